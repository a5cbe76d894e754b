"""Data-parallel evaluation with ``torch.distributed`` (``torchrun``) and job-array shards (PROTOCOL §8).

Two ways to split one run over processes, both by **whole batches of the single-process plan**
(:func:`hfus_xai_bench.runner.plan_run`; same batch size, same order within a batch), so that with
the same threads per process every per-image value is bitwise the one a single process computes:

- ``torchrun --nproc-per-node N -m hfus_xai_bench evaluate METHOD ...``: :func:`detect` reads the
  launcher's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); rank r takes batches
  ``r, r + N, r + 2N, ...`` (:func:`hfus_xai_bench.runner.share`), runs on ``cuda:LOCAL_RANK`` (or the
  CPU), and rank 0 gathers the batch outputs with ``gather_object`` (gloo on CPU, nccl on CUDA),
  scores the maps-only metrics (ρ_cross needs the whole fold), and writes the one record, maps file
  and figure. A rank that fails is reported by rank 0 as ``rank R failed: reason`` and every rank
  raises it; nothing is written. A rank that dies or hangs stops the whole job, and no rank outlives
  its launcher (:mod:`hfus_xai_bench.launch`).
- ``hfus-bench evaluate ... --shard I/N`` (:class:`Shard`) and ``hfus-bench merge``
  (:mod:`hfus_xai_bench.merge`) for schedulers that start independent jobs (Slurm arrays).

Seeds never depend on the rank: draws are seeded from the run seed and the image id, or (§3's per-call
state) from the first row of the batch in the single-process plan (§8).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .errors import HfusError
from .launch import die_with_launcher, rank_timeout

__all__ = [
    "RankContext",
    "Shard",
    "describe_failure",
    "detect",
    "gather_and_finish",
    "process_rank",
    "session",
]


@dataclass(frozen=True)
class Shard:
    """Job ``index`` of ``count`` (0-based: ``--shard 0/3``, ``1/3``, ``2/3``)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise HfusError(
                "--shard must be I/N with 0 <= I < N (0-based, e.g. 0/3, 1/3, 2/3), "
                f"got {self.index}/{self.count}"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not m:
            raise HfusError(
                f"--shard must be I/N (0-based job index / number of jobs, e.g. 0/3), got {text!r}"
            )
        return cls(int(m.group(1)), int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class RankContext:
    """This process's place in a ``torchrun`` job."""

    rank: int
    world_size: int
    local_rank: int


def detect() -> RankContext | None:
    """The ``torchrun`` context from the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), or None when
    the process was not started by a launcher with more than one process."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise HfusError(
            f"RANK / WORLD_SIZE / LOCAL_RANK must be integers ({err}); start the job with torchrun"
        ) from err
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise HfusError(f"RANK {rank} is outside 0..{world - 1}; start the job with torchrun")
    return RankContext(rank=rank, world_size=world, local_rank=local)


def process_rank() -> int:
    """This process's rank (0 outside ``torchrun``): the CLI prints results and errors on rank 0 only."""
    ctx = detect()
    return 0 if ctx is None else ctx.rank


class _Session:
    def __init__(self, ctx: RankContext, timeout_s: float) -> None:
        self.ctx = ctx
        self.timeout_s = timeout_s

    def _collective(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except RuntimeError as err:  # gloo / nccl: a peer died (connection closed) or timed out
            raise HfusError(
                f"rank {self.ctx.rank}: the job stopped at the {what}: another rank died or did not arrive "
                f"within {self.timeout_s:g} s ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                "see the other ranks' messages (set HFUS_BENCH_RANK_TIMEOUT for a longer wait)"
            ) from err

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (in rank order); None on the other ranks."""
        import torch.distributed as dist

        out = [None] * self.ctx.world_size if self.ctx.rank == 0 else None
        self._collective("gather", lambda: dist.gather_object(obj, out, dst=0))
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        import torch.distributed as dist

        box = [obj if self.ctx.rank == 0 else None]
        self._collective("broadcast", lambda: dist.broadcast_object_list(box, src=0))
        return box[0]


@contextmanager
def session(ctx: RankContext, device_type: str) -> Iterator[_Session]:
    """The process group of a ``torchrun`` job (gloo on CPU, nccl on CUDA), set up and torn down here
    (unless the caller already initialised one). The rank dies with its launcher and waits for the others
    at most :func:`~hfus_xai_bench.launch.rank_timeout` at a collective."""
    import torch
    import torch.distributed as dist

    timeout = rank_timeout()
    die_with_launcher()
    mine = not dist.is_initialized()
    if mine:
        backend = "nccl" if device_type == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(ctx.local_rank)
        try:
            dist.init_process_group(backend=backend, timeout=timeout)
        except Exception as err:  # a launcher problem, not a result
            raise HfusError(
                f"rank {ctx.rank}: cannot join the torchrun process group ({type(err).__name__}: {err}); "
                "start the job with torchrun --nproc-per-node N -m hfus_xai_bench evaluate ..."
            ) from err
    try:
        yield _Session(ctx, timeout.total_seconds())
    finally:
        if mine and dist.is_initialized():
            dist.destroy_process_group()


def describe_failure(err: BaseException) -> str:
    """``ErrorType: message (at file:line)`` for a rank's failure (HfusError: its message only)."""
    if isinstance(err, HfusError):
        return str(err)
    import traceback

    frames = traceback.extract_tb(err.__traceback__)
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(err).__name__}: {err}{where}"


def gather_and_finish(
    ctx: RankContext,
    device_type: str,
    work: Callable[[], Any],
    finish: Callable[[list[Any]], Any],
    *,
    finishing: str,
) -> Any:
    """One rank's part of a ``torchrun`` job: ``work()`` here, ``finish(every rank's result)`` on rank 0.

    Args:
        ctx: this rank's place in the job (:func:`detect`).
        device_type: ``"cuda"`` (nccl) or ``"cpu"`` (gloo).
        work: this rank's share; what it returns is gathered on rank 0 (it must pickle).
        finish: rank 0's last step, given the results in rank order; what it returns must pickle.
        finishing: what ``finish`` does, for the message when it fails ("scoring the gathered batches").

    Returns:
        ``finish``'s result, on every rank. If any rank's ``work`` raised (reported by rank 0 as
        ``rank R failed: reason``, ``finish`` not called) or ``finish`` raised, every rank raises that one
        message as :class:`HfusError` instead.
    """
    with session(ctx, device_type) as group:
        try:
            payload: tuple[str, Any] = ("ok", work())
        except Exception as err:  # reported by rank 0 for the whole job
            payload = ("error", describe_failure(err))
        gathered = group.gather(payload)
        status: tuple[str, Any] = ("ok", None)
        if ctx.rank == 0:
            status = _finish(gathered or [], ctx.world_size, finish, finishing)
        status = group.broadcast(status)
    if status[0] != "ok":
        raise HfusError(status[1])
    return status[1]


def _finish(
    gathered: list[tuple[str, Any]], world_size: int, finish: Callable[[list[Any]], Any], finishing: str
) -> tuple[str, Any]:
    failed = [(r, p[1]) for r, p in enumerate(gathered) if p[0] != "ok"]
    if failed:
        return (
            "error",
            "; ".join(f"rank {r} failed: {why}" for r, why in failed)
            + f" ({len(failed)} of {world_size} ranks; nothing written)",
        )
    try:
        return ("ok", finish([p[1] for p in gathered]))
    except Exception as err:
        return ("error", f"rank 0 failed while {finishing}: {describe_failure(err)} (nothing written)")
