"""Work in chunks that halve when CUDA runs out of memory: the built-in methods' chunks of model passes
(:func:`chunked`) and the model-based metrics' forward batches (:class:`ForwardInPieces`).

A leaf (imports only torch), so the scoring core may use it too. Runs side by side on one GPU size their
chunks from the same free memory, so a chunk can meet memory another process took meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def chunked(run: Callable[[int, int], None], n: int, chunk: int, device: torch.device) -> int:
    """Call ``run(start, stop)`` over [0, n) in chunks of at most ``chunk``; on CUDA out of memory halve the
    chunk and retry it (a chunk sized from the free memory can meet memory another process took meanwhile).
    Elsewhere, or at a chunk of one, the error is raised. Returns the chunk size it ended with."""
    start = 0
    while start < n:
        stop = min(n, start + chunk)
        try:
            run(start, stop)
            start = stop
            continue
        except torch.cuda.OutOfMemoryError:
            if device.type != "cuda" or stop - start == 1:
                raise
        # outside the handler: the failed chunk's tensors, held by the traceback there, are released now
        torch.cuda.empty_cache()
        chunk = max(1, (stop - start) // 2)
    return chunk


class ForwardInPieces:
    """``self(x)`` = ``model(x)`` (logits, along the batch axis), run in pieces of the batch that halve on a
    CUDA out-of-memory error, down to one image; the piece size found is kept for the next calls, so a
    metric's fixed forward batch (512 on CUDA) survives runs side by side on one GPU. Outputs of a split
    batch agree with one forward up to the last bits (batch shape); only OOM ever splits."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model, self.device = model, device
        self.piece: int | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if n == 0:
            return self.model(x)
        outputs: list[torch.Tensor] = []

        def run(start: int, stop: int) -> None:
            outputs.append(self.model(x[start:stop]))

        piece = chunked(run, n, min(n, self.piece or n), self.device)
        if piece < n:
            self.piece = piece
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)
