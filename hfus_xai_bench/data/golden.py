"""Golden hashes of the synthetic track, shipped with the package (PROTOCOL §1).

``golden/<revision>.json`` holds, for one generator revision (e.g. ``synth-v2-seed0``):

* ``raw_pixels``: sha256 of the raw pixels of every file the generator writes (image, masks and, from
  version 3, evidence mask and twin, at frame size, keyed by archive path) — pins the generator;
* ``images``: the content sha256 of every imported image (id, label, group, decoded 224×224 image,
  masks, SLM, evidence, twin; see ``dataset.image_sha256s``) — pins generator + import;
* ``dataset_sha256``: ``dataset.content_sha256`` of the whole dataset (also folds).

They are written once per generator version by :func:`.golden_build.build_golden`. Building the dataset
compares against them and stops with one error on any difference, so a machine whose arithmetic differs
never caches, and never evaluates on, a silently other dataset.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from ..errors import HfusError

#: Where the golden files live inside the package.
GOLDEN_PACKAGE = "hfus_xai_bench.data"
GOLDEN_DIR = "golden"

REPORT_HINT = (
    "The benchmark's numbers are only comparable on the golden data, so nothing was cached. Please "
    "report this to the hfus-xai-bench maintainers (the issue tracker of the repository you installed "
    "from) with this message, your CPU model (lscpu), `python -c 'import numpy, PIL; numpy.show_config(); "
    "print(PIL.__version__)'` and `pip list`."
)


def load_golden(revision: str) -> dict[str, Any] | None:
    """The golden hashes of ``revision``, or None when the package ships none for it (e.g. v1)."""
    ref = resources.files(GOLDEN_PACKAGE).joinpath(GOLDEN_DIR, f"{revision}.json")
    if not ref.is_file():
        return None
    return json.loads(ref.read_text())


def mismatches(expected: Mapping[str, str], got: Mapping[str, str]) -> list[str]:
    """Keys whose hash differs, is missing, or is not expected (sorted)."""
    keys = set(expected) | set(got)
    return sorted(k for k in keys if expected.get(k) != got.get(k))


def shown(keys: list[str]) -> str:
    """The first ten of ``keys`` and how many more (for one-line errors)."""
    return ", ".join(keys[:10]) + (f", … ({len(keys) - 10} more)" if len(keys) > 10 else "")


def check(
    expected: Mapping[str, str], got: Mapping[str, str], *, revision: str, stage: str, subset: bool = False
) -> None:
    """Raise one ``HfusError`` naming how many and which entries differ from the golden ones.

    ``subset``: ``got`` covers only some of the golden keys (a partial build); missing keys are fine.
    """
    if subset:
        expected = {k: v for k, v in expected.items() if k in got}
    bad = mismatches(expected, got)
    if not bad:
        return
    raise HfusError(
        f"the {revision} data generated on this machine differ from the golden hashes shipped with the "
        f"package: {len(bad)} of {len(set(expected) | set(got))} {stage} differ ({shown(bad)}). {REPORT_HINT}"
    )


def golden_status(provenance: Mapping[str, Any]) -> tuple[bool | None, str]:
    """(matches?, one line) for a dataset's ``dataset_provenance``; None: no golden hash applies."""
    revision = str(provenance.get("revision") or "")
    golden = load_golden(revision) if provenance.get("id") == "hfus-synth" else None
    if golden is None:
        return (
            None,
            f"no golden hash shipped for {provenance.get('id')}@{revision or '-'} "
            "(only the synthetic track is pinned)",
        )
    if provenance.get("sha256") == golden["dataset_sha256"]:
        return True, f"matches the golden hash of {revision}"
    return False, (
        f"DIFFERS from the golden hash of {revision} ({golden['dataset_sha256'][:16]}…): "
        "these data were generated differently; delete the cached folder and rebuild, "
        "and if it differs again, report it"
    )
