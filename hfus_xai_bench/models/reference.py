"""The study's reference checkpoints (PROTOCOL §2): every architecture × fold of the default track, which of
them are here, and one line per missing one saying how to get or make it (``hfus-bench models``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..constants import ARCH_NAMES, NUM_FOLDS, SYNTH_DATASET
from .checkpoints import (
    Checkpoint,
    is_available,
    list_checkpoints,
    missing_weights,
    preferred,
    reference_train_command,
)

__all__ = ["ReferenceSlot", "missing_reference", "reference_set"]


@dataclass(frozen=True)
class ReferenceSlot:
    """One checkpoint of the study's reference set (PROTOCOL §2): an architecture × fold on the default
    track, with its registered checkpoint (None: none trained yet)."""

    arch: str
    fold: int
    entry: Checkpoint | None

    @property
    def here(self) -> bool:
        return self.entry is not None and is_available(self.entry)

    @property
    def status(self) -> str:
        """``here``, ``not here`` (published in the repository, not in this installation), ``not published``
        (registered by sha256 only) or ``not trained``."""
        if self.entry is None:
            return "not trained"
        if self.here:
            return "here"
        return "not published" if self.entry.published == "no" else "not here"


def reference_set() -> list[ReferenceSlot]:
    """Every architecture × fold of the default track, with its checkpoint on the current revision, chosen as
    :func:`find_checkpoint` chooses (registered or trained into the user cache; None: none yet)."""
    from ..data.dataset import synth_revision

    revision = synth_revision()
    entries = [e for e in list_checkpoints() if e.dataset == SYNTH_DATASET and e.dataset_revision == revision]
    return [
        ReferenceSlot(arch, fold, preferred([e for e in entries if (e.arch, e.fold) == (arch, fold)]))
        for arch in ARCH_NAMES
        for fold in range(NUM_FOLDS)
    ]


def missing_reference(slots: list[ReferenceSlot]) -> list[str]:
    """One line per reference checkpoint of ``slots`` that is not here, saying how to get or make it; the
    folds of an architecture not trained yet share one line and one command (the recipe of the default
    model's registered checkpoint)."""
    lines = []
    for arch in dict.fromkeys(s.arch for s in slots):
        untrained = [s.fold for s in slots if s.arch == arch and s.entry is None]
        if untrained:
            folds = ",".join(map(str, untrained))
            command = reference_train_command(arch, folds)
            lines.append(f"{arch} fold{'s' * (len(untrained) > 1)} {folds}: not trained yet: `{command}`")
        lines += [
            f"{arch} fold {s.fold}: {s.status}: {missing_weights(s.entry)}"
            for s in slots
            if s.arch == arch and s.entry is not None and not s.here
        ]
    return lines
