"""`hfus-bench check`: validate a method in seconds on a handful of phantom images.

Checks the contract (loads, returns one finite, non-empty map per image of an accepted shape),
determinism for a fixed seed, and the time per image — before anyone runs the full benchmark.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .constants import CLASSES, IMAGE_SIZE
from .errors import HfusError
from .evaluate import FAIL_EMPTY, _call, _postprocess, resolve_device
from .explainers.contract import ExplainContext
from .explainers.loader import Method, load_method
from .models.zoo import get_arch


@dataclass
class CheckReport:
    """What `check` found: one line per check, plus timing."""

    method: str
    lines: list[tuple[bool, str]] = field(default_factory=list)
    seconds_per_image: float = float("nan")

    @property
    def ok(self) -> bool:
        return all(passed for passed, _ in self.lines)

    def add(self, passed: bool, text: str) -> None:
        self.lines.append((passed, text))

    def render(self) -> str:
        out = [f"hfus-bench check: {self.method}"]
        out += [f"  [{'ok' if passed else 'FAIL'}] {text}" for passed, text in self.lines]
        if np.isfinite(self.seconds_per_image):
            est = self.seconds_per_image * 126
            out.append(f"  time: {self.seconds_per_image:.3f} s/image here; about {est:.0f} s for one test fold (126 images)")
        return "\n".join(out)


def phantom_batch(n: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` small synthetic HFUS images (one class after another): images uint8 (n,224,224,3), labels, SLMs."""
    from .data.slm import skin_layer_map
    from .data.synth import generate_image

    images, labels, slms = [], [], []
    for i in range(n):
        label = CLASSES[i % len(CLASSES)]
        rgb, masks = generate_image(np.random.default_rng([seed, i]), label)
        images.append(np.asarray(Image.fromarray(rgb).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)))
        small = {
            k: np.asarray(Image.fromarray(v).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)) > 127 for k, v in masks.items()
        }
        slms.append(skin_layer_map(small.get("epidermis"), small.get("sleb"), small.get("tumor")))
        labels.append(i % len(CLASSES))
    return np.stack(images), np.array(labels, np.int64), np.stack(slms)


def _model(arch: str, device: torch.device) -> tuple[torch.nn.Module, str]:
    from .models.checkpoints import load_model

    try:
        model, _ = load_model(arch, device=str(device))
        return model, "shipped checkpoint"
    except HfusError:
        torch.manual_seed(0)
        return get_arch(arch).build().to(device), "random weights (no checkpoint available)"


def check_method(method: str | Path | Method, *, arch: str = "mobilenet_v2", n_images: int = 4, device: str = "cpu", seed: int = 0) -> CheckReport:
    """Run the contract checks; a method that cannot even be loaded raises HfusError."""
    loaded = method if isinstance(method, Method) else load_method(method)
    report = CheckReport(loaded.name)
    report.add(True, f"loaded {loaded.source} (kind={loaded.kind})")
    dev = resolve_device(device)
    spec = get_arch(arch)
    model, origin = _model(spec.name, dev)
    images, _, slms = phantom_batch(n_images, seed)
    x = torch.from_numpy(images).to(dev).permute(0, 3, 1, 2).float().div_(255.0)
    with torch.inference_mode():
        targets = model(x).argmax(1)
    prior = torch.from_numpy(slms.astype(np.float32).mean(0) / 255.0).to(dev)

    def run_once() -> tuple[torch.Tensor, list[str | None], float]:
        torch.manual_seed(seed)
        context = ExplainContext(spec.name, spec.resolve_target_layer(model), dev, spec.head(model), seed, n_images, prior)
        explainer = loaded.build(model, context)
        tic = time.perf_counter()
        outputs = _call(explainer, x.clone(), targets.clone(), loaded)
        seconds = time.perf_counter() - tic
        m255, reasons = _postprocess(outputs, n_images, loaded, "pos", dev)
        return m255, reasons, seconds

    m255, reasons, seconds = run_once()
    report.seconds_per_image = seconds / n_images
    failed = [r for r in reasons if r is not None]
    report.add(not failed, f"{n_images} phantom images on {spec.display_name} ({origin}): " + (
        "one finite, non-empty map per image" if not failed else f"{len(failed)} failed, e.g. {failed[0]}"
    ))
    if failed and all(r == FAIL_EMPTY for r in failed):
        report.add(False, "all-zero maps have no peak: Hit Rate is undefined for them")
    again, _, _ = run_once()
    same = bool(torch.equal(m255, again))
    report.add(same, "deterministic for a fixed seed" if same else "maps differ between two runs with the same seed")
    return report
