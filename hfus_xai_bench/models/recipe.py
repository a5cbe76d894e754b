"""The study's training recipe (PROTOCOL §2), importable without torch (the CLI parser reads it)."""

from __future__ import annotations

from typing import Any

#: The study recipe (annasli378/SaliencyCNNAnalysis, active training path).
STUDY_RECIPE: dict[str, Any] = {
    "optimizer": "SGD",
    "lr": 1e-3,
    "momentum": 0.9,
    "scheduler": "StepLR",
    "step_size": 7,
    "gamma": 0.1,
    "loss": "cross_entropy",
    "batch_size": 8,
    "epochs": 100,
}
DEFAULT_EPOCHS = STUDY_RECIPE["epochs"]
#: How the recipe augments and selects (recorded in every card's recipe).
AUGMENTATION = (
    "random rotation ±15° (bilinear, zero fill) + horizontal flip p=0.5, batched affine grid, 224×224"
)
SELECTION = "best validation accuracy (ties: lower validation loss, then earlier epoch)"
