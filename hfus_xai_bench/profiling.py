"""Where a run's time goes: its counted passes (PROTOCOL §6) against forward/backward row times measured here.

``hfus-bench evaluate --profile`` (which also writes it as ``<method>.profile.json``, with the run's wall
time: ``benchmarks/bench_evaluate.py --profiles`` sums such files into the whole-protocol line) and
``benchmarks/bench_evaluate.py`` print the same table: per stage the
seconds the run spent, its forward and backward rows, the **bound** = forward rows × the time of one forward
row + backward rows × the time of one backward row, and seconds / bound. The row times are measured on the
run's model after a warm-up, at the run's batch sizes (the explanation batch for the call stages, the
scoring forward batch for the metrics' stages) and memory format (channels_last on CPU).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .constants import COST_STAGES

#: stages whose passes run at the explanation batch size; the others at the scoring forward batch
CALL_STAGES = ("predict", "method", "randomisation", "runner_up", "repeat")


@dataclass(frozen=True)
class RowTimes:
    """Seconds per image row of a forward (inference) and of a backward (to the input, grad mode) pass,
    at the explanation batch size ``call_batch`` and at the scoring batch size ``score_batch``."""

    call_batch: int
    score_batch: int
    forward_call: float
    backward_call: float
    forward_score: float
    backward_score: float

    def forward(self, stage: str) -> float:
        return self.forward_call if stage in CALL_STAGES else self.forward_score

    def backward(self, stage: str) -> float:
        return self.backward_call if stage in CALL_STAGES else self.backward_score


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(fn: Any, device: torch.device, repeat: int, clock: Any) -> float:
    fn()  # warm-up (kernel selection, allocator)
    times = []
    for _ in range(repeat):
        _sync(device)
        tic = clock()
        fn()
        _sync(device)
        times.append(clock() - tic)
    return statistics.median(times)


def _per_row(
    model: torch.nn.Module, batch: int, device: torch.device, repeat: int, clock: Any
) -> tuple[float, float]:
    x = torch.rand(batch, 3, 224, 224, device=device)
    if device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    def grad_forward() -> torch.Tensor:
        with torch.enable_grad():
            return model(x.detach().requires_grad_(True))

    def both() -> None:
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            torch.autograd.grad(model(xg)[:, 0].sum(), xg)

    fwd = _median_seconds(forward, device, repeat, clock)
    bwd = max(
        _median_seconds(both, device, repeat, clock) - _median_seconds(grad_forward, device, repeat, clock),
        0.0,
    )
    return fwd / batch, bwd / batch


def measure_row_times(
    model: torch.nn.Module,
    device: torch.device,
    call_batch: int,
    score_batch: int,
    repeat: int = 3,
    clock: Any = time.perf_counter,
) -> RowTimes:
    """:class:`RowTimes` of ``model`` (eval mode, on ``device``) after a warm-up, median of ``repeat`` runs;
    ``clock``: wall time, or ``time.process_time`` (the process's CPU time: robust to other processes' load).
    """
    params = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in params:
            p.requires_grad_(False)  # as the methods run it: gradients for the input only
        fc, bc = _per_row(model, call_batch, device, repeat, clock)
        fs, bs = (
            (fc, bc) if score_batch == call_batch else _per_row(model, score_batch, device, repeat, clock)
        )
    finally:
        for p, flag in params:
            p.requires_grad_(flag)
    return RowTimes(call_batch, score_batch, fc, bc, fs, bs)


def stage_rows(cost: Mapping[str, Any], times: RowTimes) -> list[dict[str, Any]]:
    """Per stage (and a total): seconds, forward and backward rows, bound (s) and seconds / bound."""
    rows = []
    for stage in COST_STAGES:
        fwd, bwd = int(cost.get(f"forward_rows/{stage}", 0)), int(cost.get(f"backward_rows/{stage}", 0))
        seconds = float(cost.get(f"seconds/{stage}", 0.0))
        bound = fwd * times.forward(stage) + bwd * times.backward(stage)
        rows.append(
            {"stage": stage, "seconds": seconds, "forward_rows": fwd, "backward_rows": bwd, "bound": bound}
        )
    total = {
        "stage": "all stages",
        **{k: sum(r[k] for r in rows) for k in ("seconds", "forward_rows", "backward_rows", "bound")},
    }
    for r in [*rows, total]:
        r["ratio"] = r["seconds"] / r["bound"] if r["bound"] > 0 else None
    return [*rows, total]


def profile_table(cost: Mapping[str, Any], times: RowTimes, n_images: int) -> str:
    """The per-stage table as text, with the row times and what is not model passes."""
    from tabulate import tabulate

    rows = stage_rows(cost, times)
    body = [
        [
            r["stage"],
            f"{r['seconds']:.2f}",
            r["forward_rows"],
            r["backward_rows"],
            f"{r['bound']:.2f}",
            "—" if r["ratio"] is None else f"{r['ratio']:.2f}",
        ]
        for r in rows
        if r["seconds"] or r["forward_rows"] or r["backward_rows"] or r["stage"] == "all stages"
    ]
    table = tabulate(
        body, headers=["stage", "seconds", "fwd rows", "bwd rows", "bound s", "ratio"], disable_numparse=True
    )
    impute = float(cost.get("road_seconds_impute_per_image") or 0.0) * n_images
    checksum = float(cost.get("seconds_checksum_per_image") or 0.0) * n_images
    notes = (
        f"row times (after warm-up): forward {1e3 * times.forward_call:.2f} ms at batch {times.call_batch}, "
        f"{1e3 * times.forward_score:.2f} ms at batch {times.score_batch}; "
        f"backward {1e3 * times.backward_call:.2f} "
        f"/ {1e3 * times.backward_score:.2f} ms\n"
        f"inside the stages, not model passes: ROAD imputation {impute:.2f} s, "
        f"model checksums {checksum:.2f} s\n"
        f"FE/img {cost.get('fe_per_image')}"
    )
    return table + "\n" + notes


def record_row_times(record: Mapping[str, Any], repeat: int = 3) -> dict[str, RowTimes]:
    """Per architecture of a result record: :class:`RowTimes` measured here on the model of its first fold
    (``options["folds"][0]``) on the record's device, in its precision, at its batch sizes."""
    from .calls import set_precision
    from .metrics.inputs import ScoringConfig
    from .models.checkpoints import load_model

    options = record["options"]
    device = torch.device(options["device"])
    times = {}
    for arch in record["cost"]:
        model, _ = load_model(
            arch,
            dataset=record["dataset"]["id"],
            fold=int(options["folds"][0]),
            device=str(device),
            revision=record["dataset"].get("revision"),
        )
        if device.type == "cpu":
            model = model.to(memory_format=torch.channels_last)
        set_precision(model, options.get("precision", "fp32"), device)  # the bound in the run's precision
        batches = (int(options["batch_size"]), ScoringConfig().forward_batch(device))
        times[arch] = measure_row_times(model, device, *batches, repeat=repeat)
    return times


def profile_record(record: Mapping[str, Any], times: Mapping[str, RowTimes]) -> str:
    """:func:`profile_table` per architecture of a result record (``times``: :func:`record_row_times`)."""
    return "\n".join(
        f"{arch}:\n" + profile_table(cost, times[arch], record["counts"][arch]["n_images"])
        for arch, cost in record["cost"].items()
    )


def profile_summary(
    record: Mapping[str, Any], times: Mapping[str, RowTimes], wall_seconds: float
) -> dict[str, Any]:
    """What ``evaluate --profile`` writes next to the record (``<method>.profile.json``): the run's wall time
    and device, and per architecture its row times and :func:`stage_rows` (whose last row is the total)."""
    env = record["environment"]
    return {
        "method": record["method"]["name"],
        "command": record["command"],
        "device": f"{env['device']} ({env.get('device_name')})",
        "precision": record["options"].get("precision", "fp32"),
        "wall_seconds": wall_seconds,
        "archs": {
            arch: {
                "n_images": record["counts"][arch]["n_images"],
                "fe_per_image": cost["fe_per_image"],
                "row_times": asdict(times[arch]),
                "stages": stage_rows(cost, times[arch]),
            }
            for arch, cost in record["cost"].items()
        },
    }


__all__ = [
    "CALL_STAGES",
    "RowTimes",
    "measure_row_times",
    "profile_record",
    "profile_summary",
    "profile_table",
    "record_row_times",
    "stage_rows",
]
