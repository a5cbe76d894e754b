"""chunking: work in pieces that halve when CUDA runs out of memory (the built-in methods' chunks and the
model-based metrics' forwards). No GPU is needed: the out-of-memory error is raised by a fake model, and
``torch.cuda.empty_cache`` is a no-op without one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hfus_xai_bench.chunking import ForwardInPieces, chunked

CUDA, CPU = torch.device("cuda"), torch.device("cpu")


def test_chunks_halve_when_cuda_runs_out_of_memory() -> None:
    """Every index is covered once, in order; the chunk size ended with is returned; on the CPU the error is
    raised."""
    done: list[tuple[int, int]] = []

    def run(start: int, stop: int) -> None:
        if stop - start > 3:
            raise torch.cuda.OutOfMemoryError("fake")
        done.append((start, stop))

    assert chunked(run, 10, 16, CUDA) == 2
    assert done == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    with pytest.raises(torch.cuda.OutOfMemoryError):
        chunked(run, 10, 16, CPU)


class _FitsThree(nn.Module):
    """Logits = (sum of the image, its first pixel); out of memory above three images per call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        if x.shape[0] > 3:
            raise torch.cuda.OutOfMemoryError("fake")
        return torch.stack([x.flatten(1).sum(1), x.flatten(1)[:, 0]], 1)


def test_forward_in_pieces_splits_on_out_of_memory_and_keeps_the_piece() -> None:
    model = _FitsThree()
    x = torch.arange(10 * 4, dtype=torch.float64).reshape(10, 1, 2, 2)
    forward = ForwardInPieces(model, CUDA)
    # torch.equal across pieces holds here: float64 sums of small integers are exact whatever the split and
    # the CPU kind (a real model's logits would differ in the last bits across batch shapes)
    expected = torch.stack([x.flatten(1).sum(1), x.flatten(1)[:, 0]], 1)
    assert torch.equal(forward(x), expected)
    assert model.calls == [10, 5, 2, 2, 2, 2, 2] and forward.piece == 2
    model.calls.clear()
    assert torch.equal(forward(x[:5]), expected[:5])  # the next call starts at the piece found
    assert model.calls == [2, 2, 1] and forward.piece == 2
    model.calls.clear()
    assert torch.equal(forward(x[:1]), expected[:1]) and model.calls == [1]


def test_forward_in_pieces_is_one_call_without_out_of_memory_and_raises_on_the_cpu() -> None:
    model = _FitsThree()
    x = torch.ones(3, 1, 2, 2)
    out = ForwardInPieces(model, CPU)(x)
    assert model.calls == [3] and out.shape == (3, 2)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        ForwardInPieces(model, CPU)(torch.ones(4, 1, 2, 2))
    one = ForwardInPieces(model, CUDA)
    assert one(torch.ones(0, 1, 2, 2)).shape == (0, 2) and one.piece is None
