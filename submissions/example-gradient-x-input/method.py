"""Example method 2: written from scratch — gradient × input, as a plain function.

It returns signed attributions (B, 3, 224, 224), so it declares kind "attribution": the harness
then applies the canonical post-processing (channel sum, sign policy, 98 % mass threshold).

Run it:  hfus-bench check examples/gradient_x_input.py
         hfus-bench evaluate examples/gradient_x_input.py --limit 16
"""

import torch

METADATA = {
    "name": "example-gradient-x-input",
    "authors": "hfus-xai-bench developers",
    "url": "https://arxiv.org/abs/1605.01713",
    "licence": "MIT",
    "hyperparameters": {},
    "tuning_split": "none (no tuning)",
    "kind": "attribution",
}


def explain(model, images, targets, *, context):
    """d logit[target] / d input, times the input; one backward pass for the whole batch."""
    x = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        score = logits.gather(1, targets.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(score, x)
    return (grad * x).detach()
