"""The resumable state of a training run (``hfus-bench train --resume``).

A finished run is kept: with ``--resume`` a checkpoint whose card says it was made by the same run is not
trained again (a multi-fold command continues with the fold it stopped in).

After an epoch, at most once per ``interval`` seconds, everything the following epochs depend on (weights,
optimizer and scheduler state, the data-order, augmentation and global random generators, the epoch
records and the best epoch's weights) is written atomically to ``<out>/<name>.resume.pt``. A run with the
same fingerprint (architecture, init, seed, recipe, epochs, device kind and GPU name, torch, data)
continues from it and ends with the same weights as an uninterrupted run on that machine: the remaining
epochs perform the same operations on the same tensors. The file is deleted once the checkpoint is written.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import HfusError
from ..jsonio import load_json
from .checkpoints import sha256_file

RESUME_SUFFIX = ".resume.pt"
#: seconds between two writes of the state (it holds a model's weights three times: the weights, the
#: momentum buffers and the best epoch's weights)
RESUME_INTERVAL_S = 600.0


def resume_path(out_dir: Path, stem: str) -> Path:
    """Where the run that writes ``<out_dir>/<stem>.safetensors`` keeps its resumable state."""
    return out_dir / f"{stem}{RESUME_SUFFIX}"


def refuse_stale_state(path: Path, resume: bool) -> Path:
    """``path``, unless an interrupted run left its state there and ``--resume`` was not given (an error:
    starting over would silently overwrite it)."""
    if path.is_file() and not resume:
        raise HfusError(
            f"{path}: an interrupted run of this checkpoint left its state here; add --resume to continue "
            "it, or delete the file to start over"
        )
    return path


def data_sha256(*arrays: Any) -> str:
    """sha256 over the arrays' shapes, dtypes and bytes (the training and validation data)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a.cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def finished_run(card_path: Path, expected: dict[str, Any]) -> bool:
    """Whether ``card_path`` is the card of a finished run with the ``expected`` values (dotted keys, e.g.
    ``recipe.lr``) and its weights are intact. A card of another run, or weights that are missing or not the
    card's sha256, is an error: ``--resume`` never overwrites a checkpoint silently."""
    if not card_path.is_file():
        return False
    card = load_json(card_path, "checkpoint card")
    differ = [key for key, value in expected.items() if _dotted(card, key) != value]
    if differ:
        raise HfusError(
            f"{card_path} is a checkpoint of another run ({', '.join(differ)} differ); delete it or choose "
            "another --out"
        )
    weights = card_path.with_suffix(".safetensors")
    if not weights.is_file() or sha256_file(weights) != card.get("sha256"):
        raise HfusError(
            f"{weights}: missing or not its card's sha256; delete {card_path.name} to train again"
        )
    return True


def _dotted(card: dict[str, Any], key: str) -> Any:
    value: Any = card
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


@dataclass
class ResumeFile:
    """The state file of one run: ``fingerprint`` must match for a saved state to be used."""

    path: Path
    fingerprint: dict[str, Any]
    interval: float = field(default_factory=lambda: RESUME_INTERVAL_S)
    _last_write: float = field(default_factory=time.monotonic)

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None where there is none; a state of another run is an error."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # a truncated or foreign file: say which, never start over silently
            why = (str(err).splitlines() or [type(err).__name__])[0]
            raise HfusError(
                f"{self.path}: not a readable training state ({why}); delete it to start over"
            ) from err
        saved = state.get("fingerprint", {})
        differ = sorted(k for k in {*saved, *self.fingerprint} if saved.get(k) != self.fingerprint.get(k))
        if differ:
            raise HfusError(
                f"{self.path} was written by a run with another {', '.join(differ)}: give that run's "
                "arguments to continue it, or delete the file to start over"
            )
        return state

    def save_due(self, make_state: Callable[[], dict[str, Any]]) -> bool:
        """Write ``make_state()`` if ``interval`` seconds have passed since the last write; return whether."""
        if time.monotonic() - self._last_write < self.interval:
            return False
        state = {**make_state(), "fingerprint": self.fingerprint}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)
        self._last_write = time.monotonic()
        return True


__all__: Sequence[str] = (
    "RESUME_INTERVAL_S",
    "ResumeFile",
    "data_sha256",
    "finished_run",
    "refuse_stale_state",
    "resume_path",
)
