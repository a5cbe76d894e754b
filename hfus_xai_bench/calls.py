"""The one path of every explanation call (PROTOCOL §3) and the pass counts of a run (PROTOCOL §6).

Every explanation the harness asks for — the trained model's, each randomised copy's (§7.1.1), the
runner-up class's (§9) and §3's repeat — goes through :func:`explain`, which

1. sets §3's random state from one seed (:func:`set_call_state`): torch (CPU and every CUDA device),
   numpy's global generator (seed mod 2³²), Python's ``random`` and the context's ``seed``, so the calls of
   one batch differ only by the model or the target tensor, never by unseeded noise;
2. gives the method clones of the images and targets;
3. runs it under a stage of :class:`PassCounter` (rows of every forward and backward through the root
   module of the model or a copy, seconds);
4. compares the model's :func:`fingerprint` (every parameter, buffer and module) with the one taken just
   before the method was built for it, and stops the run with one line naming the method and the first
   changed tensor or module (:class:`ModelChanged`); hooks a method leaves are not a change, and the
   harness's own passes (prediction, metrics) run with them suspended (:func:`harness_passes`);
5. post-processes the output (§3.1) into ``m255`` and one failure reason per image.

A library warning raised inside the method is re-issued as coming from the method.

The run's precision is set once per model, where the model and its copies are prepared
(:func:`set_precision`): with ``bf16`` every pass through the root module of the model or a copy (the
prediction, the method's own passes, the metrics' passes) runs under ``torch.autocast`` and its logits
leave the model as float32, so everything after the model (maps, post-processing, metrics) stays float32.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .constants import COST_STAGES, FE_EXCLUDED_STAGES
from .errors import HarnessError, HfusError
from .explainers.contract import ExplainContext, run_method, to_m255
from .seeding import seed_global

#: Stages of the record's row counts (PROTOCOL §6) and those left out of FE/img (§3's repeat).
STAGES, FE_EXCLUDED = COST_STAGES, FE_EXCLUDED_STAGES

__all__ = [
    "AUTOCAST_DTYPES",
    "FE_EXCLUDED",
    "STAGES",
    "AutocastForward",
    "Call",
    "Explanation",
    "ModelChanged",
    "PassCounter",
    "explain",
    "fingerprint",
    "harness_passes",
    "set_call_state",
    "set_precision",
    "stage_of",
]


# ------------------------------------------------------------------------------------- random state


def set_call_state(seed: int, context: ExplainContext | None = None) -> None:
    """PROTOCOL §3's state of one call: torch CPU + CUDA, numpy global (seed mod 2³²), ``random``, context
    seed."""
    seed_global(seed)
    if context is not None:
        context.seed = int(seed)


# ------------------------------------------------------------------------------------------- precision

#: the autocast dtype of each precision of ``config.PRECISIONS`` other than fp32 (fp32: no autocast)
AUTOCAST_DTYPES = {"bf16": torch.bfloat16}


def _float32(output: Any) -> Any:
    """Floating tensors of a model's output (a tensor, or a tuple/list of them) as float32."""
    if isinstance(output, torch.Tensor):
        return output.float() if output.is_floating_point() else output
    if isinstance(output, tuple | list):
        items = [_float32(o) for o in output]
        return type(output)(*items) if hasattr(output, "_fields") else type(output)(items)
    return output


class AutocastForward:
    """A model's ``forward`` under ``torch.autocast(device_type, dtype)``; its output leaves as float32."""

    def __init__(self, forward: Any, device_type: str, dtype: torch.dtype) -> None:
        self.forward, self.device_type, self.dtype = forward, device_type, dtype

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type=self.device_type, dtype=self.dtype):
            output = self.forward(*args, **kwargs)
        return _float32(output)


def set_precision(model: nn.Module, precision: str, device: torch.device | str) -> nn.Module:
    """Run every pass through the root module of ``model`` in ``precision`` (in place; returns ``model``).

    ``fp32`` leaves the model as it is. ``bf16`` replaces the instance's ``forward`` with
    :class:`AutocastForward`: the parameters stay float32 (the fingerprint and the checkpoint hashes are
    unchanged), hooks on the root module still see every pass, and the logits leave as float32. Passes a
    method makes through submodules directly (e.g. Ablation-CAM's head) are not under autocast.
    """
    if precision == "fp32":
        return model
    if precision not in AUTOCAST_DTYPES:
        known = ", ".join(["fp32", *AUTOCAST_DTYPES])
        raise HfusError(f"--precision must be one of {known}, got {precision!r}")
    if isinstance(model.__dict__.get("forward"), AutocastForward):
        raise HfusError("internal: the model's precision was set twice; please report it")
    model.forward = AutocastForward(model.forward, torch.device(device).type, AUTOCAST_DTYPES[precision])
    return model


# ------------------------------------------------------------------------------------ model fingerprint

_SAMPLE = 64  # elements per tensor in the sampled part of the fingerprint


def _as_ints(values: torch.Tensor) -> torch.Tensor:
    """Values as integers that compare exactly: float bit patterns viewed as same-size ints, bools as 0/1."""
    if values.dtype == torch.bool:
        return values.to(torch.int64)
    if values.is_floating_point():
        ints = {8: torch.int64, 4: torch.int32, 2: torch.int16}[values.element_size()]
        return values.contiguous().view(ints).to(torch.int64)
    return values.to(torch.int64)


@torch.no_grad()
def _summaries(tensors: Sequence[torch.Tensor]) -> list[tuple[int, tuple[int, ...]]]:
    """Per tensor: the bit pattern of its L2 norm (float tensors, fused over each dtype group) or its sum
    (integer tensors), and ``_SAMPLE`` elements spread over it (logical order: catches moved values).
    One device-to-host copy per dtype group; the per-tensor cost is a few fused kernels."""
    out: list[tuple[int, tuple[int, ...]]] = [(0, ())] * len(tensors)
    groups: dict[tuple[torch.dtype, torch.device], list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault((t.dtype, t.device), []).append(i)
    index: dict[tuple[int, torch.device], torch.Tensor] = {}
    for (dtype, device), members in groups.items():
        ts = [tensors[i] for i in members]
        if dtype.is_floating_point:
            totals = torch.stack(torch._foreach_norm(ts)) if ts else torch.zeros(0)
        else:
            totals = torch.stack([t.sum(dtype=torch.int64) for t in ts])
        samples, sizes = [], []
        for t in ts:
            n = t.numel()
            key = (n, device)
            if key not in index:
                index[key] = torch.linspace(0, max(n - 1, 0), min(n, _SAMPLE), device=device).long()
            samples.append(t.take(index[key]))
            sizes.append(min(n, _SAMPLE))
        flat = _as_ints(torch.cat([totals.to(dtype).reshape(-1), *samples])).tolist()
        pos = len(ts)
        for j, (i, size) in enumerate(zip(members, sizes, strict=True)):
            out[i] = (flat[j], tuple(flat[pos : pos + size]))
            pos += size
    return out


@dataclass(frozen=True)
class Fingerprint:
    """What a method must leave unchanged: the module tree (with any ``forward`` set on an instance) and
    every parameter and buffer (values included)."""

    modules: tuple[tuple[str, str, int, bool, int], ...]
    tensors: tuple[tuple[str, int, str, tuple[int, ...], int, tuple[int, ...]], ...]

    def first_change(self, other: Fingerprint) -> str | None:
        """A one-phrase description of the first difference to ``other`` (None: the same)."""
        if self.modules != other.modules:
            before = {m[0]: m for m in self.modules}
            after = {m[0]: m for m in other.modules}
            for name in [*before, *after]:
                if before.get(name) != after.get(name):
                    a, b = before.get(name), after.get(name)
                    what = (
                        "was added"
                        if a is None
                        else "was removed"
                        if b is None
                        else "was replaced"
                        if a[1:3] != b[1:3]
                        else "had its forward replaced"
                        if a[4] != b[4]
                        else f"was switched to {'training' if b[3] else 'eval'} mode"
                    )
                    return f"module {name or '(root)'!r} {what}"
        before_t = {t[0]: t for t in self.tensors}
        after_t = {t[0]: t for t in other.tensors}
        for name in [*before_t, *after_t]:
            a, b = before_t.get(name), after_t.get(name)
            if a != b:
                if a is None or b is None:
                    return f"{name} was {'added' if a is None else 'removed'}"
                what = "was replaced" if a[1] != b[1] else "changed (dtype/shape)" if a[2:4] != b[2:4] else ""
                return f"{name} {what or 'changed its values'}"
        return None


def _instance_forward(module: nn.Module) -> int:
    """The identity of a ``forward`` set on ``module`` itself; 0: none, or the harness's precision wrapper."""
    forward = module.__dict__.get("forward")
    return 0 if forward is None or isinstance(forward, AutocastForward) else id(forward)


def fingerprint(model: nn.Module) -> Fingerprint:
    """The :class:`Fingerprint` of ``model``: module names, types, identities, training flags and the
    identity of a ``forward`` set on the instance (0: none, or the harness's :class:`AutocastForward`); per
    parameter and buffer its name, identity, dtype, shape, the bit pattern of its L2 norm (float) or its
    exact sum (integer, bool) and a sampled digest."""
    modules = tuple(
        (name, type(m).__name__, id(m), bool(m.training), _instance_forward(m))
        for name, m in model.named_modules()
    )
    named = [(f"parameter {n}", t) for n, t in model.named_parameters()]
    named += [(f"buffer {n}", t) for n, t in model.named_buffers()]
    summaries = _summaries([t for _, t in named])
    tensors = tuple(
        (name, id(t), str(t.dtype), tuple(t.shape), total, sample)
        for (name, t), (total, sample) in zip(named, summaries, strict=True)
    )
    return Fingerprint(modules, tensors)


class ModelChanged(HfusError):
    """A method changed the model it was given (PROTOCOL §3): the run stops and nothing is recorded."""


# ------------------------------------------------------------------------------------------ row counts


def _rows(args: tuple, kwargs: dict) -> int:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return int(value.shape[0]) if value.dim() else 1
    return 0


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


@dataclass
class PassCounter:
    """Image rows of every forward and backward pass through the watched root modules, per stage (§6).

    A forward row is one image through the root module of the model or a copy (a forward pre-hook on the
    root); a backward row is one logit row a gradient flows back from, however deep (a hook on the root's
    output tensor, fired by ``backward()`` and ``torch.autograd.grad`` alike). Passes outside any stage
    are an error of the harness. ``seconds``: wall time per stage (the device synchronised at both ends).
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    forward: Counter = field(default_factory=Counter)
    backward: Counter = field(default_factory=Counter)
    seconds: Counter = field(default_factory=Counter)
    current: str | None = None
    #: False: passes are not counted (a split run's other processes building a method already counted once)
    counting: bool = True
    #: seconds spent fingerprinting the models after the calls (inside the calls' stages; shown apart)
    checksum_seconds: float = 0.0
    _handles: list[Any] = field(default_factory=list, repr=False)

    def _count(self, kind: Counter, rows: int) -> None:
        if not self.counting:
            return
        if self.current is None:
            raise HarnessError(
                "internal: a model pass outside any cost stage (PROTOCOL §6); please report it"
            )
        kind[self.current] += rows

    def watch(self, model: nn.Module) -> None:
        """Count the passes through ``model`` (its root module) from now on."""

        def pre(_module: nn.Module, args: tuple, kwargs: dict) -> None:
            self._count(self.forward, _rows(args, kwargs))

        def post(_module: nn.Module, _args: tuple, output: Any) -> None:
            out = _first_tensor(output)
            if out is not None and out.requires_grad:
                out.register_hook(lambda grad: self._count(self.backward, int(grad.shape[0])))

        pre.harness = post.harness = True  # kept by harness_passes
        self._handles.append(model.register_forward_pre_hook(pre, with_kwargs=True))
        self._handles.append(model.register_forward_hook(post))

    def close(self) -> None:
        """Remove the counting hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Count the passes and the seconds inside under stage ``name`` (one of :data:`STAGES`)."""
        if name not in STAGES:
            raise HfusError(f"internal: unknown cost stage {name!r}; stages: {', '.join(STAGES)}")
        outer = self.current
        _sync(self.device)
        tic = time.perf_counter()
        self.current = name
        try:
            yield
        finally:
            _sync(self.device)
            self.current = outer
            elapsed = time.perf_counter() - tic
            self.seconds[name] += elapsed
            if outer is not None:  # a nested stage's seconds are not the outer stage's
                self.seconds[outer] -= elapsed

    def snapshot(self) -> dict[str, float]:
        """``{"forward_rows/<stage>": n, "backward_rows/<stage>": n, "seconds/<stage>": s}`` (non-zero
        entries)."""
        out: dict[str, float] = {}
        for prefix, counter in (("forward_rows", self.forward), ("backward_rows", self.backward)):
            out.update({f"{prefix}/{k}": float(v) for k, v in counter.items() if v})
        out.update({f"seconds/{k}": float(v) for k, v in self.seconds.items() if v})
        if self.checksum_seconds:
            out["seconds_checksum"] = self.checksum_seconds
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def stage_of(metric: Any) -> str:
    """The cost stage a model-based metric runs under: its name, one of PROTOCOL §6's stages."""
    if metric.name not in STAGES:
        raise HfusError(
            f"metric {metric.id} makes model passes under no cost stage of PROTOCOL §6 "
            f"({', '.join(STAGES)}); a new model-based metric needs its name added to constants.COST_STAGES"
        )
    return metric.name


# ------------------------------------------------------------------------------ hooks left by a method

#: the module hook dicts a forward or backward pass runs (torch's ``nn.Module`` attributes)
_HOOK_DICTS = ("_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks")


def _suspend(hooks: dict[int, Any]) -> tuple[list[int], dict[int, Any]]:
    """Remove the hooks not marked ``harness`` from ``hooks`` (in place); the key order and the removed."""
    order = list(hooks)
    removed = {k: h for k, h in hooks.items() if not getattr(h, "harness", False)}
    for key in removed:
        del hooks[key]
    return order, removed


def _restore(hooks: dict[int, Any], order: list[int], removed: dict[int, Any]) -> None:
    """Put the removed hooks back in their order (hooks added meanwhile stay, after them)."""
    current = dict(hooks)
    hooks.clear()
    for key in order:
        if key in removed or key in current:
            hooks[key] = removed[key] if key in removed else current.pop(key)
    hooks.update(current)


@contextmanager
def harness_passes(model: nn.Module | None) -> Iterator[None]:
    """The harness's own passes through ``model`` (prediction, the metrics' passes): the module hooks a
    method left on any of its modules, and torch's global module hooks, are suspended inside and put back
    after, so a hook a method keeps (allowed, PROTOCOL §3) cannot change what the metrics measure. Hooks
    whose function has ``harness = True`` stay: the pass counter's, an outside observer's."""
    if model is None:
        yield
        return
    import torch.nn.modules.module as torch_module

    dicts = [getattr(m, name) for m in model.modules() for name in _HOOK_DICTS]
    dicts += [getattr(torch_module, f"_global{name}") for name in _HOOK_DICTS]
    saved = [_suspend(hooks) for hooks in dicts]
    try:
        yield
    finally:
        for hooks, (order, removed) in zip(dicts, saved, strict=True):
            _restore(hooks, order, removed)


# ------------------------------------------------------------------------------------------ the call


@dataclass
class Call:
    """One model as the method sees it: the model, the method built for it, its context and fingerprint.

    ``label``: how a message names the model ("the trained model", "randomised copy 2").
    """

    label: str
    model: nn.Module
    explainer: Any
    context: ExplainContext
    reference: Fingerprint


@dataclass
class Explanation:
    """The post-processed maps of one call: ``m255`` uint8 (B, 224, 224) on the device, a reason per image."""

    m255: torch.Tensor
    reasons: list[str | None]
    seconds: float


#: (method, category, message) of the warnings already shown in this process (each call's catch_warnings
#: resets Python's own once-per-location registry, so the harness keeps its own)
_WARNED: set[tuple[str, str, str]] = set()


def _reissue(caught: Sequence[warnings.WarningMessage], method: str) -> None:
    """Show each warning the method's code raised once per process, as coming from the method."""
    for w in caught:
        key = (method, w.category.__name__, str(w.message))
        if key in _WARNED:
            continue
        _WARNED.add(key)
        warnings.warn(
            f"method {method!r} warned ({w.category.__name__} at {w.filename}:{w.lineno}): {w.message}",
            RuntimeWarning,
            stacklevel=3,
        )


def explain(
    call: Call,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    method: Any,
    seed: int,
    stage: str,
    passes: PassCounter,
    sign: str,
    extra: dict[str, Any] | None = None,
) -> Explanation:
    """One explanation call under PROTOCOL §3's rules (see the module docstring).

    Args:
        call: the model and the method built for it.
        method: the loaded :class:`~hfus_xai_bench.explainers.loader.Method` (name, file, kind).
        seed: the call's state (derive(run seed, "batch", arch, fold, first row)).
        stage: the cost stage the call counts under (:data:`STAGES`), in ``passes``.
        sign: how attributions are reduced to maps (PROTOCOL §3.1).
        extra: set into ``context.extra`` before the call (e.g. ``evidence`` for reference rows).

    Returns:
        The post-processed maps and a failure reason per image. Raises :class:`ModelChanged`.
    """
    if extra:
        call.context.extra.update(extra)
    with passes.stage(stage):
        set_call_state(seed, call.context)
        tic = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            outputs = run_method(call.explainer, images.clone(), targets.clone(), method.file)
        _sync(passes.device)
        seconds = time.perf_counter() - tic
        m255, reasons = to_m255(outputs, len(images), method.kind, sign, passes.device)
        tic = time.perf_counter()
        change = call.reference.first_change(fingerprint(call.model))
        passes.checksum_seconds += time.perf_counter() - tic
    _reissue(caught, method.name)
    if change is not None:
        raise ModelChanged(
            f"method {method.name!r} changed {call.label} during its call: {change}; a method must not "
            "change the model (PROTOCOL §3): the run is stopped and nothing is recorded"
        )
    return Explanation(m255=m255, reasons=reasons, seconds=seconds)
