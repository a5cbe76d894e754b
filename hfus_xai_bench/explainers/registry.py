"""The built-in methods: one table (:data:`BUILTINS`); names, families and shared METADATA derive from it.

A built-in is declared once, as ``name: (family, "module:ClassName")``; its class carries the rest of
its METADATA (authors, url, hyper-parameters, citation, ``not_applicable``). The METADATA keys that a
whole family shares are written once, in :data:`FAMILY_METADATA`; the loader merges them under the
class's own.
"""

from __future__ import annotations

from typing import Any, NamedTuple

_CAM = "hfus_xai_bench.explainers.cam"
_ATTR = "hfus_xai_bench.explainers.attribution"
_ECO_CAM = "hfus_xai_bench.explainers.cam_ecosystem"
_ECO_ATTR = "hfus_xai_bench.explainers.attribution_ecosystem"
_SANITY = "hfus_xai_bench.explainers.baselines"


class Builtin(NamedTuple):
    """One built-in: its family (see :data:`FAMILY_METADATA`) and ``"module:ClassName"``."""

    family: str
    target: str


#: name (the CLI name) -> Builtin; every class follows the ``Explainer`` protocol of ``contract.py``.
BUILTINS: dict[str, Builtin] = {
    # CAM family (pytorch-grad-cam semantics, fast paths in cam.py)
    "gradcam": Builtin("cam", f"{_CAM}:GradCAM"),
    "gradcampp": Builtin("cam", f"{_CAM}:GradCAMPlusPlus"),
    "hirescam": Builtin("cam", f"{_CAM}:HiResCAM"),
    "eigengradcam": Builtin("cam", f"{_CAM}:EigenGradCAM"),
    "ablationcam": Builtin("cam", f"{_CAM}:AblationCAM"),
    "scorecam": Builtin("cam", f"{_CAM}:ScoreCAM"),
    # attribution family (captum semantics, attribution.py)
    "ig": Builtin("attribution", f"{_ATTR}:IntegratedGradients"),
    "gradientshap": Builtin("attribution", f"{_ATTR}:GradientShap"),
    "saliency": Builtin("attribution", f"{_ATTR}:Saliency"),
    "occlusion15": Builtin("attribution", f"{_ATTR}:Occlusion15"),
    "occlusion30": Builtin("attribution", f"{_ATTR}:Occlusion30"),
    "occlusion45": Builtin("attribution", f"{_ATTR}:Occlusion45"),
    # ecosystem baselines (PROTOCOL §5, v1.2): grad-cam 1.5.7 and captum 0.9.0
    "layercam": Builtin("ecosystem", f"{_ECO_CAM}:LayerCAM"),
    "xgradcam": Builtin("ecosystem", f"{_ECO_CAM}:XGradCAM"),
    "fullgrad": Builtin("ecosystem", f"{_ECO_CAM}:FullGrad"),
    "expectedgradients": Builtin("ecosystem", f"{_ECO_ATTR}:ExpectedGradients"),
    "smoothgrad": Builtin("ecosystem", f"{_ECO_ATTR}:SmoothGrad"),
    "deeplift": Builtin("ecosystem", f"{_ECO_ATTR}:DeepLift"),
    "inputxgradient": Builtin("ecosystem", f"{_ECO_ATTR}:InputXGradient"),
    "guidedbackprop": Builtin("ecosystem", f"{_ECO_ATTR}:GuidedBackprop"),
    # sanity baselines (baselines.py)
    "random": Builtin("sanity", f"{_SANITY}:RandomMap"),
    "center": Builtin("sanity", f"{_SANITY}:CenterGaussian"),
    "depth_prior": Builtin("sanity", f"{_SANITY}:DepthPrior"),
    "sobel": Builtin("sanity", f"{_SANITY}:SobelEdges"),
    "input": Builtin("sanity", f"{_SANITY}:InputIntensity"),
    # reference rows of evidence tracks (PROTOCOL §9; read the evidence mask, never ranked)
    "oracle": Builtin("reference", f"{_SANITY}:Oracle"),
    "oracle@grid": Builtin("reference", f"{_SANITY}:OracleGrid"),
}

_LICENCE = "MIT (this implementation)"

#: METADATA every built-in of a family shares (a class's own METADATA may override a key).
FAMILY_METADATA: dict[str, dict[str, Any]] = {
    "cam": {"licence": _LICENCE, "tuning_split": "none (the study's settings, PROTOCOL §5)"},
    "attribution": {"licence": _LICENCE, "tuning_split": "none (the study's settings, PROTOCOL §5)"},
    "ecosystem": {
        "licence": _LICENCE,
        "tuning_split": (
            "none (LATEC's configuration where it has one, else the library's defaults; PROTOCOL §5)"
        ),
    },
    "sanity": {"licence": _LICENCE, "tuning_split": "none"},
    "reference": {"licence": _LICENCE, "tuning_split": "none"},
}


def family(name: str) -> tuple[str, ...]:
    """The built-in names of one family, in table order."""
    return tuple(n for n, b in BUILTINS.items() if b.family == name)


#: name -> "module:ClassName"
BUILTIN_METHODS: dict[str, str] = {name: b.target for name, b in BUILTINS.items()}
CAM_METHODS = family("cam")
ATTRIBUTION_METHODS = family("attribution")
ECOSYSTEM_METHODS = family("ecosystem")
SANITY_METHODS = family("sanity")
REFERENCE_METHODS = family("reference")
