"""Built-in method names (the CLI names) and where each one lives."""

from __future__ import annotations

#: name -> "module:ClassName"; every class follows the ``Explainer`` protocol of ``contract.py``.
BUILTIN_METHODS: dict[str, str] = {
    # CAM family (pytorch-grad-cam semantics, fast paths in cam.py)
    "gradcam": "hfus_xai_bench.explainers.cam:GradCAM",
    "gradcampp": "hfus_xai_bench.explainers.cam:GradCAMPlusPlus",
    "hirescam": "hfus_xai_bench.explainers.cam:HiResCAM",
    "eigengradcam": "hfus_xai_bench.explainers.cam:EigenGradCAM",
    "ablationcam": "hfus_xai_bench.explainers.cam:AblationCAM",
    "scorecam": "hfus_xai_bench.explainers.cam:ScoreCAM",
    # attribution family (captum semantics, attribution.py)
    "ig": "hfus_xai_bench.explainers.attribution:IntegratedGradients",
    "gradientshap": "hfus_xai_bench.explainers.attribution:GradientShap",
    "saliency": "hfus_xai_bench.explainers.attribution:Saliency",
    "occlusion15": "hfus_xai_bench.explainers.attribution:Occlusion15",
    "occlusion30": "hfus_xai_bench.explainers.attribution:Occlusion30",
    "occlusion45": "hfus_xai_bench.explainers.attribution:Occlusion45",
    # sanity baselines (baselines.py)
    "random": "hfus_xai_bench.explainers.baselines:RandomMap",
    "center": "hfus_xai_bench.explainers.baselines:CenterGaussian",
    "depth_prior": "hfus_xai_bench.explainers.baselines:DepthPrior",
    "sobel": "hfus_xai_bench.explainers.baselines:SobelEdges",
    "input": "hfus_xai_bench.explainers.baselines:InputIntensity",
    # reference rows of evidence tracks (PROTOCOL §9; read the evidence mask, never ranked)
    "oracle": "hfus_xai_bench.explainers.baselines:Oracle",
    "oracle@grid": "hfus_xai_bench.explainers.baselines:OracleGrid",
}

CAM_METHODS = ("gradcam", "gradcampp", "hirescam", "eigengradcam", "ablationcam", "scorecam")
ATTRIBUTION_METHODS = ("ig", "gradientshap", "saliency", "occlusion15", "occlusion30", "occlusion45")
SANITY_METHODS = ("random", "center", "depth_prior", "sobel", "input")
REFERENCE_METHODS = ("oracle", "oracle@grid")
