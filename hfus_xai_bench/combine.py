"""Result records of disjoint (architecture, fold) pairs of one configuration, combined into the record of
the run that covers them all (``hfus-bench merge A.json B.json ...``, PROTOCOL §8): a row whose folds ran
in different sessions or on different machines, e.g. ``benchmarks/cpu_rows.sh`` one fold at a time.

:func:`combine_records` checks that the records belong together — the same method (record and method-file
sha256), dataset (id, revision, content hash), per-image columns and options (precision and device kind
included) but ``models`` and ``folds``, this package's protocol version, disjoint (arch, fold) pairs that
together form the grid ``models × folds``, maps files on all or on none — and refuses otherwise with a
message naming the record and the field. The combined record is aggregated from the per-image values the
records carry (:func:`hfus_xai_bench.results.fold_scores_from_record`), so its ``metrics``,
``classification``, ``counts``, ``per_image`` and pass counts are those of one run over the grid that gave
the same per-image values; ``environment.run`` lists the records it was combined from; timestamp, command
and measured seconds are the other differences. With maps files, the combined record's maps file holds
every record's arrays (they are per architecture and fold). No figure is drawn.
"""

from __future__ import annotations

import hashlib
import io
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .constants import ARCH_NAMES, PROTOCOL_VERSION
from .errors import HfusError
from .hashing import sha256_file
from .merge import device_kind, differ_message, require_same_source
from .results import Result, build_result, fold_scores_from_record, validate

#: the options that may differ between the records (they are the union's)
GRID_OPTIONS = ("models", "folds")


def is_result_record(record: Any) -> bool:
    """Whether a loaded JSON file is a result record (not a shard record)."""
    return isinstance(record, dict) and "per_image" in record and "kind" not in record


def combine_records(paths: Sequence[str | Path], *, out: str | Path, command: str | None = None) -> Result:
    """Check that the result records ``paths`` are disjoint parts of one run (module docstring), combine
    them and write ``<method>.json`` (+ ``<method>.maps.npz`` when they carry maps) under ``out``."""
    if len(paths) < 2:
        raise HfusError("give two or more result records to combine (the folds or architectures of one run)")
    records = [_load(p) for p in paths]
    for rec in records[1:]:
        _check_same(records[0], rec)
    pairs = _check_disjoint(records)
    models = [a for a in ARCH_NAMES if any(arch == a for arch, _ in pairs)]
    folds = sorted({fold for _, fold in pairs})
    missing = [f"{a} fold {f}" for a in models for f in folds if (a, f) not in pairs]
    if missing:
        raise HfusError(
            f"the records cover {len(pairs)} (architecture, fold) pairs, not the grid of "
            f"{', '.join(models)} × folds {', '.join(map(str, folds))}: {', '.join(missing)} missing"
        )
    runs = {(r.arch, r.fold): r for rec in records for r in fold_scores_from_record(rec)}
    first = records[0]
    options = {**first["options"], "models": models, "folds": folds}
    result = build_result(
        first["method"],
        [runs[(a, f)] for a in models for f in folds],
        options=options,
        dataset=first["dataset"],
        environment={**first["environment"], "run": _provenance(records)},
        command=_grid_command(first.get("command"), first["options"], models, folds),
    )
    _write(result, records, Path(out))
    return result


def _load(path: str | Path) -> dict[str, Any]:
    from .jsonio import load_json

    path = Path(path)
    record = load_json(path, "result record")
    if not is_result_record(record):
        raise HfusError(f"{path} is not a result record (`hfus-bench evaluate` or `merge` writes one)")
    validate(record, source=str(path))
    if record["protocol_version"] != PROTOCOL_VERSION:
        raise HfusError(
            f"{path} was scored under protocol {record['protocol_version']}, this package scores "
            f"{PROTOCOL_VERSION}: combine it with the version that made it"
        )
    record["_path"] = str(path)
    record["_sha256"] = sha256_file(path)
    return record


def _check_same(first: dict[str, Any], rec: dict[str, Any]) -> None:
    """Raise HfusError unless ``rec`` has ``first``'s method, dataset, options (but the grid's), per-image
    columns and maps-file presence."""
    require_same_source(first, rec, "parts")
    name0, name = first["_path"], rec["_path"]
    for label, a, b in (
        ("options", _run_options(first), _run_options(rec)),
        ("per-image columns (metrics scored)", _columns(first), _columns(rec)),
    ):
        if a != b:
            raise HfusError(differ_message(name, name0, label, a, b, "parts"))
    if (rec["maps_file"] is None) != (first["maps_file"] is None):
        with_maps = name0 if first["maps_file"] is not None else name
        raise HfusError(
            f"{with_maps} carries a maps file and the other does not: combine records made with the same "
            "--save-maps"
        )


def _columns(record: dict[str, Any]) -> dict[str, bool]:
    """The per-image columns of a record (a part without a metric's values would drop it from the grid)."""
    return dict.fromkeys(record["per_image"][0] if record["per_image"] else (), True)


def _run_options(record: dict[str, Any]) -> dict[str, Any]:
    """The options every part must share: all but the grid's, the device by its kind (cuda:1 = cuda)."""
    return device_kind({k: v for k, v in record["options"].items() if k not in GRID_OPTIONS})


def _check_disjoint(records: list[dict[str, Any]]) -> dict[tuple[str, int], str]:
    """Every record's (arch, fold) pairs, checked to be disjoint; pair → the record's file name."""
    pairs: dict[tuple[str, int], str] = {}
    for rec in records:
        name = rec["_path"]
        for arch, by_fold in rec["checkpoints"].items():
            for fold in by_fold:
                pair = (arch, int(fold))
                if pair in pairs:
                    raise HfusError(f"{arch} fold {fold} is in both {pairs[pair]} and {name}")
                pairs[pair] = name
    return pairs


def _provenance(records: list[dict[str, Any]]) -> dict[str, Any]:
    """``environment.run`` of the combined record: each part's file, sha256, pairs, command and run."""
    return {
        "launcher": "combined",
        "parts": [
            {
                "file": rec["_path"],
                "sha256": rec["_sha256"],
                "pairs": [[a, int(f)] for a, by_fold in rec["checkpoints"].items() for f in by_fold],
                "command": rec.get("command"),
                "timestamp": rec.get("timestamp"),
                "run": rec.get("environment", {}).get("run"),
            }
            for rec in records
        ],
    }


def _grid_command(
    command: str | None, options: dict[str, Any], models: list[str], folds: list[int]
) -> str | None:
    """``command`` (a part's evaluate command, run with ``options``) changed to give the grid: its
    ``--models`` and ``--folds`` replaced, or added where the part's value (a default) is not the grid's."""
    if not command:
        return command
    tokens = shlex.split(command)
    for flag, value, part in (
        ("--models", models, options["models"]),
        ("--folds", folds, options["folds"]),
    ):
        text = ",".join(map(str, value))
        if any(t.startswith(f"{flag}=") for t in tokens):
            tokens = [f"{flag}={text}" if t.startswith(f"{flag}=") else t for t in tokens]
        elif flag in tokens[:-1]:
            tokens[tokens.index(flag) + 1] = text
        elif list(part) != list(value):
            tokens += [flag, text]
    return shlex.join(tokens)


def _write(result: Result, records: list[dict[str, Any]], out: Path) -> None:
    """Write the combined record (+ the union of the parts' maps files), each file renamed into place."""
    out.mkdir(parents=True, exist_ok=True)
    name = result.record["method"]["name"]
    if records[0]["maps_file"] is not None:
        grid = [(a, f) for a in result.record["options"]["models"] for f in result.record["options"]["folds"]]
        data = _union_maps(records, grid)
        tmp = out / f".{name}.maps.npz.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, out / f"{name}.maps.npz")
        result.record["maps_file"] = {"path": f"{name}.maps.npz", "sha256": hashlib.sha256(data).hexdigest()}
    tmp = out / f".{name}.json.tmp"
    result.save(tmp)
    os.replace(tmp, out / f"{name}.json")


def _union_maps(records: list[dict[str, Any]], grid: list[tuple[str, int]]) -> bytes:
    """Every part's maps-file arrays in one compressed npz, in grid order (architectures, then folds: the
    file one run over the grid writes, whatever order the parts were given in); each part's sha256 checked
    first."""
    by_pair: dict[str, dict[str, np.ndarray]] = {}
    for rec in records:
        path = Path(rec["_path"]).parent / rec["maps_file"]["path"]
        if not path.is_file():
            raise HfusError(f"{rec['_path']}: its maps file {path.name} is missing")
        if sha256_file(path) != rec["maps_file"]["sha256"]:
            raise HfusError(f"{rec['_path']}: maps file {path.name} does not match the sha256 it records")
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:  # "<arch>__fold<k>__<array>", each part's own keys in the order it wrote
                by_pair.setdefault(key.rsplit("__", 1)[0], {})[key] = npz[key]
    arrays = {k: v for a, f in grid for k, v in by_pair.pop(f"{a}__fold{f}", {}).items()}
    if by_pair:
        raise HfusError(
            f"maps of {', '.join(sorted(by_pair))} belong to no part of the grid; please report it"
        )
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


__all__: Sequence[str] = ("GRID_OPTIONS", "combine_records", "is_result_record")
