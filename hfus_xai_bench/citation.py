"""BibTeX for the benchmark, its data and the work it ports (``hfus-bench cite``), and for the built-in methods.

Fields we could not check against the publisher's page carry ``note = {verify: ...}`` so nobody
copies an unverified field into a paper without looking.
"""

from __future__ import annotations

import re

from .constants import BENCHMARK_VERSION, PROTOCOL_VERSION

REPO_URL = "https://github.com/hfus-xai-bench/hfus-xai-bench"  # verify: final home of the repository


def benchmark_bibtex(version: str = BENCHMARK_VERSION) -> str:
    """The benchmark software at a fixed version (cite the version whose numbers you report)."""
    key = "hfus_xai_bench_" + re.sub(r"[^0-9A-Za-z]+", "_", version)
    return (
        f"@software{{{key},\n"
        "  title     = {{hfus-xai-bench}: a benchmark for saliency methods on CNNs for high-frequency ultrasound skin images},\n"
        "  author    = {{hfus-xai-bench developers}},\n"
        f"  version   = {{{version}}},\n"
        "  year      = {2025},\n"
        f"  url       = {{{REPO_URL}}},\n"
        f"  note      = {{protocol v{PROTOCOL_VERSION}; verify: year, url and a DOI of the tagged release}}\n"
        "}"
    )


DATASET_BIBTEX = """@misc{hfus_dataset_5p7fxjt7vs_v1,
  title        = {High-frequency ultrasound skin images (AD, CG, PS, ST) with epidermis, SLEB and tumour segmentations},
  author       = {Czajkowska, Joanna and others},
  howpublished = {Mendeley Data, V1},
  year         = {2021},
  doi          = {10.17632/5p7fxjt7vs.1},
  url          = {https://data.mendeley.com/datasets/5p7fxjt7vs/1},
  note         = {verify: title, author list, year and licence (probably CC BY 4.0) on the landing page}
}"""

STUDY_CODE_BIBTEX = """@software{saliency_cnn_analysis,
  title  = {SaliencyCNNAnalysis: attention analysis of convolutional neural networks for classification of skin ultrasound images},
  author = {{annasli378}},
  year   = {2024},
  url    = {https://github.com/annasli378/SaliencyCNNAnalysis},
  note   = {commit aadd486 (2024-03-06); verify: author name}
}"""

PAPER_BIBTEX = """@article{czajkowska2021sensors,
  title   = {Deep Learning-Based High-Frequency Ultrasound Skin Image Classification with Multicriteria Model Evaluation},
  author  = {Czajkowska, Joanna and Badura, Pawe{\\l} and Korzekwa, Szymon and P{\\l}atkowska-Szczerek, Anna and S{\\l}owi{\\'n}ska, Monika},
  journal = {Sensors},
  volume  = {21},
  number  = {17},
  pages   = {5846},
  year    = {2021},
  doi     = {10.3390/s21175846},
  note    = {verify: title, first names and DOI}
}"""

#: Built-in methods: (reference url, BibTeX) — used for the leaderboard's links when a record has none.
METHOD_REFERENCES: dict[str, tuple[str, str]] = {
    "gradcam": (
        "https://arxiv.org/abs/1610.02391",
        "@inproceedings{selvaraju2017gradcam,\n  title = {Grad-CAM: Visual Explanations from Deep Networks via "
        "Gradient-Based Localization},\n  author = {Selvaraju, Ramprasaath R. and Cogswell, Michael and Das, Abhishek and "
        "Vedantam, Ramakrishna and Parikh, Devi and Batra, Dhruv},\n  booktitle = {ICCV},\n  year = {2017}\n}",
    ),
    "gradcampp": (
        "https://arxiv.org/abs/1710.11063",
        "@inproceedings{chattopadhay2018gradcampp,\n  title = {Grad-CAM++: Generalized Gradient-Based Visual "
        "Explanations for Deep Convolutional Networks},\n  author = {Chattopadhay, Aditya and Sarkar, Anirban and "
        "Howlader, Prantik and Balasubramanian, Vineeth N.},\n  booktitle = {WACV},\n  year = {2018}\n}",
    ),
    "hirescam": (
        "https://arxiv.org/abs/2011.08891",
        "@article{draelos2020hirescam,\n  title = {Use HiResCAM instead of Grad-CAM for faithful explanations of "
        "convolutional neural networks},\n  author = {Draelos, Rachel Lea and Carin, Lawrence},\n  journal = "
        "{arXiv:2011.08891},\n  year = {2020}\n}",
    ),
    "eigengradcam": (
        "https://arxiv.org/abs/2008.00299",
        "@inproceedings{muhammad2020eigencam,\n  title = {Eigen-CAM: Class Activation Map using Principal Components},"
        "\n  author = {Muhammad, Mohammed Bany and Yeasin, Mohammed},\n  booktitle = {IJCNN},\n  year = {2020},\n"
        "  note = {EigenGrad-CAM is the pytorch-grad-cam variant on gradient-weighted activations}\n}",
    ),
    "ablationcam": (
        "https://openaccess.thecvf.com/content_WACV_2020/html/Desai_Ablation-CAM_Visual_Explanations_for_Deep_"
        "Convolutional_Network_via_Gradient-free_Localization_WACV_2020_paper.html",
        "@inproceedings{desai2020ablationcam,\n  title = {Ablation-CAM: Visual Explanations for Deep Convolutional "
        "Network via Gradient-free Localization},\n  author = {Desai, Saurabh and Ramaswamy, Harish G.},\n"
        "  booktitle = {WACV},\n  year = {2020}\n}",
    ),
    "scorecam": (
        "https://arxiv.org/abs/1910.01279",
        "@inproceedings{wang2020scorecam,\n  title = {Score-CAM: Score-Weighted Visual Explanations for "
        "Convolutional Neural Networks},\n  author = {Wang, Haofan and Wang, Zifan and Du, Mengnan and Yang, Fan and "
        "Zhang, Zijian and Ding, Sirui and Mardziel, Piotr and Hu, Xia},\n  booktitle = {CVPR Workshops},\n"
        "  year = {2020}\n}",
    ),
    "ig": (
        "https://arxiv.org/abs/1703.01365",
        "@inproceedings{sundararajan2017ig,\n  title = {Axiomatic Attribution for Deep Networks},\n  author = "
        "{Sundararajan, Mukund and Taly, Ankur and Yan, Qiqi},\n  booktitle = {ICML},\n  year = {2017}\n}",
    ),
    "gradientshap": (
        "https://arxiv.org/abs/1705.07874",
        "@inproceedings{lundberg2017shap,\n  title = {A Unified Approach to Interpreting Model Predictions},\n"
        "  author = {Lundberg, Scott M. and Lee, Su-In},\n  booktitle = {NeurIPS},\n  year = {2017}\n}",
    ),
    "saliency": (
        "https://arxiv.org/abs/1312.6034",
        "@article{simonyan2013saliency,\n  title = {Deep Inside Convolutional Networks: Visualising Image "
        "Classification Models and Saliency Maps},\n  author = {Simonyan, Karen and Vedaldi, Andrea and Zisserman, "
        "Andrew},\n  journal = {arXiv:1312.6034},\n  year = {2013}\n}",
    ),
}
_OCCLUSION = (
    "https://arxiv.org/abs/1311.2901",
    "@inproceedings{zeiler2014visualizing,\n  title = {Visualizing and Understanding Convolutional Networks},\n"
    "  author = {Zeiler, Matthew D. and Fergus, Rob},\n  booktitle = {ECCV},\n  year = {2014}\n}",
)
METHOD_REFERENCES.update({f"occlusion{w}": _OCCLUSION for w in (15, 30, 45)})


def cite(*, benchmark: bool = True, dataset: bool = True, study: bool = True, paper: bool = True) -> str:
    """The requested BibTeX entries, separated by blank lines."""
    parts = []
    if benchmark:
        parts.append(benchmark_bibtex())
    if dataset:
        parts.append(DATASET_BIBTEX)
    if study:
        parts.append(STUDY_CODE_BIBTEX)
    if paper:
        parts.append(PAPER_BIBTEX)
    return "\n\n".join(parts) + "\n"


def bibtex_balanced(text: str) -> bool:
    """A cheap well-formedness check: every entry starts with ``@type{key,`` and braces balance."""
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    entries = re.findall(r"@\w+\{[^,\s]+,", text)
    return depth == 0 and len(entries) == text.count("\n@") + text.startswith("@")
