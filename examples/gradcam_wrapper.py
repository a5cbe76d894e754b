"""Example method 1: wrap a library method (pytorch-grad-cam's Grad-CAM) as a class-based explainer.

Run it:  hfus-bench check examples/gradcam_wrapper.py
         hfus-bench evaluate examples/gradcam_wrapper.py --limit 16
"""

import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

METADATA = {
    "name": "example-gradcam-wrapper",
    "authors": "hfus-xai-bench developers",
    "url": "https://github.com/jacobgil/pytorch-grad-cam",
    "licence": "MIT",
    "hyperparameters": {
        "target_layer": "pinned by the benchmark",
        "aug_smooth": False,
        "eigen_smooth": False,
    },
    "tuning_split": "none (no tuning)",
    "kind": "map",
}


class Explainer:
    """Constructed once per model (the trained one, each randomised copy); called per batch, the trained
    model's also with the runner-up classes as targets (PROTOCOL §9)."""

    kind = "map"

    def __init__(self, model, context):
        # context.target_layer is the benchmark's pinned CAM layer for this architecture
        self.cam = GradCAM(model=model, target_layers=[context.target_layer])

    def __call__(self, images, targets):
        # one target per image (a shorter list silently gives zero maps in grad-cam 1.5.7)
        cam_targets = [ClassifierOutputTarget(int(t)) for t in targets]
        with torch.enable_grad():
            maps = self.cam(input_tensor=images, targets=cam_targets)  # numpy (B, 224, 224)
        return maps
