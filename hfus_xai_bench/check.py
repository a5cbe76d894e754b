"""Validate a method in seconds on a handful of phantom images (``hfus-bench check``).

Checks the contract (loads, returns one finite, non-empty map per image of an accepted type and shape,
leaves the model unchanged), determinism for a fixed seed, that the method also runs on the randomised
copies of the model (PROTOCOL §7.1.1), that every registry metric whose inputs the check makes
(randomisation and ROAD included, on the few phantom images; not the §9 ones, which need evidence masks,
twins or runner-up maps) scores its maps within the metric's declared range (the scoring core, as in
``evaluate``), and the time per image — before anyone runs the full benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .calls import Call, Explanation, PassCounter, explain, fingerprint, harness_passes
from .config import check_limit
from .constants import (
    CLASSES,
    IMAGE_SIZE,
    N_IMAGES,
    NUM_FOLDS,
    RANDOMISATION_COPIES,
    RANDOMISATION_PASS_BELOW,
)
from .errors import HfusError
from .explainers.contract import FAIL_EMPTY, NEGATIVE_MAP, EmptyMap, ExplainContext, maps_agree
from .explainers.loader import Method, load_method
from .metrics.inputs import ScoringInputs
from .metrics.randomisation import randomised_model
from .metrics.registry import outputs
from .models.zoo import get_arch
from .results import per_image_output
from .runtime import resolve_device
from .scoring import score_fold, select_metrics
from .seeding import derive_seed


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
            fold = N_IMAGES // NUM_FOLDS  # the images of one test fold
            est = self.seconds_per_image * fold
            about = f"about {est:.0f} s" if est >= 1 else "under 1 s"
            out.append(
                f"  time: the method's calls {self.seconds_per_image:.3f} s/image here, {about} for one test "
                f"fold ({fold} images); `evaluate` adds the metrics' passes (randomised copies, ROAD, §9)"
            )
        return "\n".join(out)


def phantom_batch(n: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` small synthetic HFUS images (one class after another): images uint8 (n,224,224,3), labels,
    SLMs."""
    from .data.slm import skin_layer_map
    from .data.synth import generate_image

    images, labels, slms = [], [], []
    for i in range(n):
        label = CLASSES[i % len(CLASSES)]
        rgb, masks = generate_image(np.random.default_rng([seed, i]), label)
        images.append(np.asarray(Image.fromarray(rgb).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)))
        small = {
            k: np.asarray(Image.fromarray(v).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)) > 127
            for k, v in masks.items()
        }
        slms.append(skin_layer_map(small.get("epidermis"), small.get("sleb"), small.get("tumor")))
        labels.append(i % len(CLASSES))
    return np.stack(images), np.array(labels, np.int64), np.stack(slms)


def _model(arch: str, device: torch.device) -> tuple[torch.nn.Module, str]:
    """The checkpoint of (arch, fold 0), else random weights where none is here; a checkpoint whose file is
    corrupt or unreadable is an error, never replaced by random weights."""
    from .models.checkpoints import find_checkpoint, load_model, resolve_file

    try:
        entry = find_checkpoint(arch)
        resolve_file(entry)
    except HfusError:
        torch.manual_seed(0)
        return get_arch(arch).build().to(device), "random weights (no checkpoint available)"
    model, _ = load_model(arch, checkpoint=entry, device=str(device))
    return model, "shipped checkpoint"


#: the randomisation outputs whose CI bounds decide the ranking gate (PROTOCOL §7.1.1, §7.4)
GATE_KEYS = ("randomisation@2/rho", "randomisation@2/pearson")


def _score_line(
    model: torch.nn.Module,
    images: torch.Tensor,
    slms: np.ndarray,
    m255: torch.Tensor,
    targets: torch.Tensor,
    reasons: list[str | None],
    extras: dict[str, Any],
) -> tuple[bool, str]:
    """Score the phantom maps with every registry metric whose inputs are here (not §9's); every output
    must lie in its declared range."""
    ok = np.array([r is None for r in reasons], bool)
    if not ok.any():
        return False, "no map to score"
    n = len(reasons)
    inputs = ScoringInputs(
        m255=m255.cpu().numpy(),
        slms=slms,
        image_ids=[f"phantom-{i}" for i in range(n)],
        labels=targets.cpu().numpy(),
        targets=targets.cpu().numpy(),
        ok=ok,
        model=model,
        images=images,
        extras=extras,
    )
    chosen = select_metrics(extras=extras)  # a metric needing other runner-made extras is skipped here
    with harness_passes(model):
        values = score_fold(inputs, chosen)
    bad, shown, gate = [], [], []
    for metric, out in outputs():
        if metric not in chosen:
            continue
        v = per_image_output(
            out, {name: values[metric.key(name)] for name in (x.name for x in metric.values)}
        )[ok]
        lo, hi = out.range
        finite = v[np.isfinite(v)]
        if finite.size and ((finite < lo - 1e-9) | (finite > hi + 1e-9)).any():
            bad.append(f"{metric.key(out)} outside [{lo}, {hi}]")
        if out.label:
            shown.append(f"{out.label} {np.nanmean(v):.2f}" if finite.size else f"{out.label} n/a")
        if metric.key(out) in GATE_KEYS and finite.size and np.nanmean(v) >= RANDOMISATION_PASS_BELOW:
            gate.append(str(out.label))
    text = f"scored by {len(chosen)} registry metrics ({len(shown)} outputs): " + ", ".join(shown)
    if gate:
        text += (
            f"; note: {' and '.join(gate)} ≥ {RANDOMISATION_PASS_BELOW:g} on these phantoms: maps this close "
            "to the randomised copies' fail the ranking gate (PROTOCOL §7.4)"
        )
    return not bad, text if not bad else text + "; " + "; ".join(bad)


def _difference(first: Explanation, again: Explanation) -> str:
    """Where two explanations of the same batch differ: the first image whose reason or map changed."""
    for i, (r1, r2) in enumerate(zip(first.reasons, again.reasons, strict=True)):
        if r1 != r2:
            return f"image {i}: {r1 or 'a map'!s} on the first run, {r2 or 'a map'!s} on the second"
    d = (first.m255.short() - again.m255.short()).abs().flatten(1).cpu()
    i = int((d.amax(1) > 0).int().argmax())
    return (
        f"{int((d.amax(1) > 0).sum())} of {len(d)} maps; image {i}: {int((d[i] > 0).sum())} pixels, "
        f"up to {int(d[i].max())} levels of 255"
    )


def _determinism_line(dev: torch.device, first: Explanation, again: Explanation) -> tuple[bool, str]:
    if all(r is not None for r in first.reasons):
        return False, "determinism not checked: no map was produced"
    if dev.type == "cpu":  # the CPU run is the bitwise reference (PROTOCOL §5.1)
        same = bool(torch.equal(first.m255, again.m255)) and first.reasons == again.reasons
        return same, (
            "deterministic for a fixed seed"
            if same
            else f"maps differ between two runs with the same seed ({_difference(first, again)})"
        )
    # GPU backward passes are not bitwise reproducible: the re-run tolerance of `verify --rerun`
    same = bool(maps_agree(first.m255.cpu().numpy(), again.m255.cpu().numpy())[0].all())
    return same, (
        f"deterministic for a fixed seed (within the {dev.type} tolerance)"
        if same
        else "maps differ between two runs with the same seed (beyond the GPU tolerance)"
    )


def _randomised_side(
    loaded: Method,
    copies: list[torch.nn.Module],
    make: Any,
    run: Any,
    report: CheckReport,
) -> dict[str, np.ndarray] | None:
    """PROTOCOL §7.1.1: the method built for each copy explains the same images; one line, the first failure
    named."""
    maps, oks = [], []
    for k, copy in enumerate(copies):
        try:
            done = run(make(f"randomised copy {k}", copy), "randomisation")
        except HfusError as err:
            report.add(False, f"method {loaded.name!r} fails on randomised copy {k}: {err}")
            return None
        bad = [r for r in done.reasons if r not in (None, FAIL_EMPTY)]
        if bad:
            report.add(
                False,
                f"method {loaded.name!r} fails on randomised copy {k} for {len(bad)} image(s): {bad[0]}",
            )
            return None
        maps.append(done.m255)
        oks.append([r in (None, FAIL_EMPTY) for r in done.reasons])
    report.add(True, f"runs on the {len(copies)} randomised copies (PROTOCOL §7.1.1)")
    return {
        "m255_randomised": torch.stack(maps, 1).cpu().numpy(),
        "randomised_ok": np.array(oks, bool).T,
    }


def _phantom_inputs(
    model: torch.nn.Module, n_images: int, seed: int, dev: torch.device
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, torch.Tensor]:
    """The phantom batch as the method sees it (B, 3, H, W in [0, 1]), the model's predictions as targets,
    the layer maps and their mean as the depth prior."""
    images, _, slms = phantom_batch(n_images, seed)
    x = torch.from_numpy(images).to(dev).permute(0, 3, 1, 2).float().div_(255.0)
    with torch.inference_mode():
        targets = model(x).argmax(1)
    prior = torch.from_numpy(slms.astype(np.float32).mean(0) / 255.0).to(dev)
    return x, targets, slms, prior


def _maps_lines(failed: list[str], what: str) -> list[tuple[bool, str]]:
    """The report lines on the maps of the first call (``failed``: the reasons of the images that failed)."""
    if not failed:
        return [(True, f"{what}: one finite, non-empty map per image")]
    lines = [(False, f"{what}: {len(failed)} failed, e.g. {failed[0]}")]
    if any(isinstance(r, EmptyMap) for r in failed):
        lines.append((False, f"all-zero maps ({NEGATIVE_MAP})"))
    elif all(r == FAIL_EMPTY for r in failed):
        lines.append((False, "all-zero maps have no peak: Hit Rate is undefined for them"))
    return lines


def check_method(
    method: str | Path | Method,
    *,
    arch: str = "mobilenet_v2",
    n_images: int = 4,
    device: str = "auto",
    seed: int = 0,
) -> CheckReport:
    """Run the contract checks; a method that cannot even be loaded raises HfusError.

    Args:
        method: a method file, a built-in name, an entry point or a loaded :class:`Method`.
        arch: the architecture whose checkpoint (or, without one, random weights) it explains.
        n_images: phantom images (:func:`phantom_batch`; synthetic, no dataset needed).
        device: where to run (``auto``: CUDA when available).
        seed: the run seed of the calls and of the phantom images.

    Returns:
        The report: one line per check (``ok``, ``lines``, ``render()``) and the seconds per image.

    As ``evaluate`` does: the randomised copies are built from the model as loaded, before the method is
    built (PROTOCOL §7.1.1), and every call goes through :func:`hfus_xai_bench.calls.explain` (one random
    state, clones of the inputs, the model's fingerprint checked, the method's warnings named as its own).
    """
    check_limit(n_images)
    loaded = method if isinstance(method, Method) else load_method(method)
    report = CheckReport(loaded.name)
    report.add(True, f"loaded {loaded.source} (kind={loaded.kind})")
    if loaded.unused:
        report.add(True, f"defines both `{loaded.unused}` and `Explainer`: uses the class `Explainer`")
    dev = resolve_device(device)
    spec = get_arch(arch)
    model, origin = _model(spec.name, dev)
    copies = [
        randomised_model(model, seed=derive_seed(0, "randomisation", k)) for k in range(RANDOMISATION_COPIES)
    ]
    x, targets, slms, prior = _phantom_inputs(model, n_images, seed, dev)
    passes = PassCounter(dev)
    state = derive_seed(seed, "batch", spec.name, 0, 0)

    def make(label: str, net: torch.nn.Module) -> Call:
        context = ExplainContext.for_model(
            spec, net, dev, seed=seed, batch_size=n_images, depth_prior=prior, training_sample=x
        )  # the phantom batch stands in for the training sample (Expected Gradients' baselines)
        reference = fingerprint(net)
        return Call(label, net, loaded.build(net, context), context, reference)

    def run(call: Call, stage: str) -> Explanation:
        return explain(call, x, targets, method=loaded, seed=state, stage=stage, passes=passes, sign="pos")

    try:
        trained = make("the trained model", model)
        first = run(trained, "method")
        again = run(trained, "repeat")
    except HfusError as err:
        report.add(False, str(err))
        return report
    report.seconds_per_image = first.seconds / n_images
    failed = [r for r in first.reasons if r is not None]
    for line in _maps_lines(failed, f"{n_images} phantom images on {spec.display_name} ({origin})"):
        report.add(*line)
    report.add(*_determinism_line(dev, first, again))
    extras = _randomised_side(loaded, copies, make, run, report)
    if not failed and extras is not None:
        report.add(*_score_line(model, x, slms, first.m255, targets, first.reasons, extras))
    return report
