"""Writing the golden hashes of a canonical synthetic build (see :mod:`.golden`, which checks against them).

Kept apart from :mod:`.golden` because it reads a dataset (:mod:`.dataset`), which itself checks against
the golden hashes: ``python -m hfus_xai_bench.data.golden_build ARCHIVE DATASET OUT.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import HfusError
from .dataset import content_sha256, image_sha256s, read_folder
from .synth_ops import INFO_NAME


def build_golden(archive_dir: str, dataset_dir: str) -> dict[str, Any]:
    """The golden record of a canonical build: ``SYNTH_INFO.json`` of the archive + its imported dataset.

    Used once per generator version by a maintainer
    (``python -m hfus_xai_bench.data.golden_build ARCHIVE DATASET OUT.json``); the build then checks
    every later build against it.
    """
    info = json.loads((Path(archive_dir) / INFO_NAME).read_text())
    if not info.get("complete") or "only" in info:
        raise HfusError(
            f"{archive_dir} is not a complete synthetic archive; generate the whole archive first"
        )
    ds = read_folder(Path(dataset_dir))
    return {
        "dataset_sha256": content_sha256(ds),
        "generator": {
            "n": info["n"],
            "name": info["generator"],
            "seed": info["seed"],
            "size": info["size"],
            "version": info["version"],
        },
        "images": image_sha256s(ds),
        "raw_pixels": {f["path"]: f["pixels_sha256"] for f in info["files"]},
        "revision": f"synth-v{info['version']}-seed{info['seed']}",
    }


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 4:
        raise SystemExit("usage: python -m hfus_xai_bench.data.golden_build ARCHIVE DATASET OUT.json")
    with open(sys.argv[3], "w") as fh:
        json.dump(build_golden(sys.argv[1], sys.argv[2]), fh, indent=0, sort_keys=True)
        fh.write("\n")
