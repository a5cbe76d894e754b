"""Seeds for every random draw (PROTOCOL §8), derived from the run seed and the item, never from a rank.

"Every random draw is seeded from (run seed, image id, and where needed the fraction or pass), never
from a process rank or a batch position", except §3's per-call state (``derive_seed(run_seed, "batch",
arch, fold, first row of the batch)``: it follows the batch size, never the split) and §7.1.1's fixed
randomised copies (``derive_seed(0, "randomisation", k)``). A seed is the first 8 bytes (little endian) of
the sha256 of a canonical text, with the top bit cleared (so it fits a signed 64-bit integer:
0 ≤ seed < 2**63):

- :func:`item_seed` ``(run_seed, image_id, *tags)``: the text is
  ``'hfus-xai-bench:item:' + json.dumps([run_seed, image_id, *tags], separators=(",", ":"))``;
- :func:`derive_seed` ``(seed, *tags)``: a sub-seed of an existing seed (e.g. one per ROAD fraction),
  text ``'hfus-xai-bench:derive:' + json.dumps([seed, *tags], separators=(",", ":"))``.

JSON keeps the parts unambiguous (an image id containing ``:`` cannot collide with a tag, and the tag
``1`` differs from ``"1"``). Tags are ints or strings; pass fractions as strings (``"0.1"``) or indices.
The same inputs give the same seed on every machine, Python and numpy version.

Draws themselves use the CPU generator (:func:`torch_generator`), so the numbers do not depend on the
device the work later runs on.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import random

import numpy as np
import torch

from .errors import HfusError

__all__ = ["SEED_BITS", "derive_seed", "item_seed", "seed_global", "torch_generator"]

#: seeds are in 0 .. 2**SEED_BITS - 1
SEED_BITS = 63
_MASK = (1 << SEED_BITS) - 1


def _as_int(value: object, what: str) -> int:
    """``value`` as a Python int (numpy integers too); bools and floats are refused."""
    if isinstance(value, bool | float) or not isinstance(value, numbers.Integral):
        raise HfusError(f"{what} must be an integer, got {type(value).__name__} {value!r}")
    return int(value)


def _check_part(value: object, what: str) -> int | str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise HfusError(f"{what} must be an int or a str, got {type(value).__name__} {value!r}")
    return int(value)


def _hash(kind: str, parts: list[int | str]) -> int:
    text = f"hfus-xai-bench:{kind}:" + json.dumps(parts, ensure_ascii=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode("ascii")).digest()[:8], "little") & _MASK


def item_seed(run_seed: int, image_id: str, *tags: int | str) -> int:
    """The seed of one item: ``run_seed`` (int), ``image_id`` (the dataset's id), optional tags.

    Example: ``item_seed(0, "2019-03-01_p07_a")`` is the image's ROAD seed in a run with seed 0.
    """
    run_seed = _as_int(run_seed, "run_seed")
    if not isinstance(image_id, str):
        raise HfusError(f"image_id must be a str, got {type(image_id).__name__} {image_id!r}")
    return _hash("item", [run_seed, image_id, *(_check_part(t, "a seed tag") for t in tags)])


def derive_seed(seed: int, *tags: int | str) -> int:
    """A sub-seed of ``seed`` for the purpose named by ``tags`` (e.g. ``derive_seed(s, "road", "noise",
    "morf", 0)``)."""
    return _hash("derive", [_as_int(seed, "seed"), *(_check_part(t, "a seed tag") for t in tags)])


def torch_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (draw on the CPU, then move the numbers to the
    device)."""
    seed = _as_int(seed, "seed")
    if not 0 <= seed <= 0xFFFF_FFFF_FFFF_FFFF:
        raise HfusError(f"seed must be in 0 .. 2**64 - 1, got {seed}")
    return torch.Generator(device="cpu").manual_seed(seed)


def seed_global(seed: int) -> None:
    """Seed the global generators: torch (the CPU's and every CUDA device's), numpy's (seed mod 2³²) and
    Python's ``random``."""
    seed = int(seed)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
