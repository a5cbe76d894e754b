"""Job-array shards (``hfus-bench evaluate ... --shard I/N``) and their merge (``hfus-bench merge``), PROTOCOL
§8.

A shard is job ``I`` of ``N`` (0-based): it runs its share of whole batches of the single-process plan
(:func:`hfus_xai_bench.batches.share`: batches ``I, I + N, ...``) and writes, under ``--out``:

- ``<method>.shard-I-of-N.json``: a shard record (``"kind": "hfus-xai-bench shard"``): method, options,
  dataset provenance, checkpoints of the (arch, fold) it touched, its batches, and per batch the
  per-image predictions, targets, failure reasons (the randomised copies' and the runner-up's too), the
  model-based metrics' values (scored on that batch: exactly what a single process computes), seconds and
  pass counts per stage (PROTOCOL §6: they add up to the single process's); plus ``maps_file``;
- ``<method>.shard-I-of-N.maps.npz``: per batch the m255 maps of the model, of every randomised copy and of
  the runner-up class, with the other per-image metric inputs the runner made (shards always carry their
  maps: the maps-only metrics, e.g. the fold-scope ρ_cross, are scored at the merge, over each whole fold).

:func:`merge_shards` checks that the shards belong together — same method (record and method-file
sha256), dataset (id, revision, content hash), options, checkpoints, number of shards, one shard per
index, every batch of the plan exactly once and nothing else, maps files matching their sha256 — and
refuses otherwise with a message naming the shard and the field; then it scores the gathered batches
exactly as a single process does and writes the same record (``environment.run`` says it was merged
from N shards; timestamp, command and measured cost are the only other differences), maps file (if
the shards were run with ``--save-maps``) and figure.
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import HfusError
from .hashing import sha256_file
from .jsonio import from_json_numbers, json_numbers, load_json

if TYPE_CHECKING:
    from .batches import Batch, BatchOutput
    from .config import RunConfig
    from .distributed import Shard
    from .explainers.loader import Method
    from .results import Result
    from .runner import ShareOutput

SHARD_KIND = "hfus-xai-bench shard"
SHARD_SCHEMA_VERSION = 1

__all__ = [
    "SHARD_KIND",
    "device_kind",
    "differ_message",
    "evaluate_shard",
    "load_shard",
    "merge_shards",
    "require_same_source",
    "shard_name",
]


def shard_name(method: str, shard: Shard) -> str:
    return f"{method}.shard-{shard.index}-of-{shard.count}"


def _strip_shard_flag(command: str | None) -> str | None:
    """The command without ``--shard I/N`` (what one process would run)."""
    if not command:
        return command
    try:
        parts = shlex.split(command)
    except ValueError:
        return command
    out, skip = [], False
    for part in parts:
        if skip:
            skip = False
            continue
        if part == "--shard":
            skip = True
            continue
        if part.startswith("--shard="):
            continue
        out.append(part)
    return shlex.join(out)


def evaluate_shard(
    method: str | Path | Method,
    config: RunConfig,
    shard: Shard,
    *,
    out: str | Path,
    save_maps: bool = False,
    progress: bool = True,
    command: str | None = None,
) -> Path:
    """Run shard ``shard`` of the run ``config`` and write its shard record + maps under ``out``.

    ``save_maps``: the merged record will also write the maps file (as ``evaluate --save-maps``).
    Returns the path of the shard record (JSON).
    """
    import torch

    from .batches import plan_run, share
    from .data.dataset import dataset_provenance, load_dataset
    from .explainers.loader import Method as MethodType
    from .explainers.loader import load_method
    from .results import method_record
    from .runner import out_folder, run_environment, run_share

    out_dir = out_folder(out)
    loaded = method if isinstance(method, MethodType) else load_method(method)
    device = config.resolve_device()
    ds = load_dataset(config.dataset, revision=config.revision)
    plan = plan_run(ds, config, device)
    mine = share(plan, shard.index, shard.count)
    desc = f"{loaded.name} shard {shard} ({len(mine)} of {len(plan)} batches)"
    result = run_share(loaded, config, ds, device, mine, progress=progress, desc=desc)
    arrays: dict[str, np.ndarray] = {}
    outputs = [_output_entry(j, o, arrays) for j, o in enumerate(result.outputs)]
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = shard_name(loaded.name, shard)
    maps_file = _write_maps(out_dir / f"{stem}.maps.npz", arrays)
    record = {
        "kind": SHARD_KIND,
        "schema_version": SHARD_SCHEMA_VERSION,
        "shard": {
            "index": shard.index,
            "count": shard.count,
            "n_batches_plan": len(plan),
            "batches": [[b.arch, b.fold, b.start, b.stop] for b in mine],
        },
        "method": method_record(loaded),
        "options": config.to_options(device),
        "dataset": dataset_provenance(ds),
        "folds": [
            {"arch": a, "fold": f, "checkpoint": v["checkpoint"], "cost": v["cost"]}
            for (a, f), v in result.folds.items()
        ],
        "outputs": outputs,
        "save_maps": bool(save_maps),
        "environment": run_environment(
            device, shards=shard.count, threads=torch.get_num_threads(), launcher="shard"
        ),
        "command": command,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "maps_file": maps_file,
    }
    path = out_dir / f"{stem}.json"
    _replace(path, (json.dumps(record, indent=1, allow_nan=False) + "\n").encode())
    return path


def _write_maps(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """Write a shard's arrays to ``path`` (compressed npz, replaced atomically); its name and sha256."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    data = buffer.getvalue()
    _replace(path, data)
    return {"path": path.name, "sha256": hashlib.sha256(data).hexdigest()}


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary name beside ``path`` and rename it into place."""
    import os

    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _output_entry(j: int, o: BatchOutput, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Batch ``j`` of a shard: its JSON entry; its maps and other metric inputs go into ``arrays``."""
    arrays[f"b{j}__m255"] = o.m255
    for key, value in o.extras.items():
        arrays[f"b{j}__extra__{key}"] = np.asarray(value)
    return {
        "arch": o.batch.arch,
        "fold": o.batch.fold,
        "start": o.batch.start,
        "stop": o.batch.stop,
        "preds": [int(v) for v in o.preds],
        "targets": [int(v) for v in o.targets],
        "failed": list(o.failed),
        "randomised_failed": None if o.randomised_failed is None else list(o.randomised_failed),
        "runner_up_failed": None if o.runner_up_failed is None else list(o.runner_up_failed),
        "seconds": float(o.seconds),
        "forward_images": int(o.forward_images),
        "cost": {k: float(v) for k, v in o.cost.items()},
        "values": {k: json_numbers(v) for k, v in o.values.items()},
    }


def _batch_output(
    name: str, j: int, o: dict[str, Any], maps: dict[str, np.ndarray], key: tuple
) -> BatchOutput:
    """The :class:`~hfus_xai_bench.batches.BatchOutput` of batch ``j`` of shard file ``name``."""
    from .batches import Batch, BatchOutput

    if f"b{j}__m255" not in maps:
        raise HfusError(f"{name}: its maps file lacks batch {j}")
    extras = {k.split("__extra__", 1)[1]: v for k, v in maps.items() if k.startswith(f"b{j}__extra__")}
    return BatchOutput(
        batch=Batch(*key),
        preds=np.array(o["preds"], np.int64),
        targets=np.array(o["targets"], np.int64),
        m255=maps[f"b{j}__m255"],
        failed=list(o["failed"]),
        seconds=float(o["seconds"]),
        forward_images=int(o["forward_images"]),
        extras=extras,
        randomised_failed=o["randomised_failed"],
        runner_up_failed=o.get("runner_up_failed"),
        values={k: from_json_numbers(v) for k, v in o["values"].items()},
        cost=dict(o["cost"]),
    )


def load_shard(path: str | Path) -> dict[str, Any]:
    """A shard record (checked: kind, version, its maps file's sha256); ``"_maps"`` holds the loaded
    arrays."""
    path = Path(path)
    record = load_json(path, "shard file")
    if not isinstance(record, dict) or record.get("kind") != SHARD_KIND:
        raise HfusError(f"{path} is not a shard record (written by `hfus-bench evaluate ... --shard I/N`)")
    if record.get("schema_version") != SHARD_SCHEMA_VERSION:
        raise HfusError(
            f"{path}: shard schema version {record.get('schema_version')}, this package reads "
            f"{SHARD_SCHEMA_VERSION}; merge with the version that wrote it"
        )
    maps_path = path.parent / record["maps_file"]["path"]
    if not maps_path.is_file():
        raise HfusError(f"{path}: its maps file {maps_path.name} is missing (shards carry their maps)")
    actual = sha256_file(maps_path)
    if actual != record["maps_file"]["sha256"]:
        raise HfusError(
            f"{path}: maps file {maps_path.name} has sha256 {actual}, the shard records "
            f"{record['maps_file']['sha256']}"
        )
    with np.load(maps_path, allow_pickle=False) as npz:
        record["_maps"] = {k: npz[k] for k in npz.files}
    record["_path"] = str(path)
    return record


def device_kind(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the device by its kind (``cuda:1`` → ``cuda``): what parts of one run must share."""
    return {**options, "device": str(options.get("device", "")).split(":")[0]}


def require_same_source(first: dict[str, Any], other: dict[str, Any], what: str) -> None:
    """Raise HfusError unless records ``first`` and ``other`` (``_path`` set) have the same method and dataset
    (id, revision, content hash, size); the message names both files and calls them ``what`` of one run."""
    name0, name = first["_path"], other["_path"]
    for key, label in (
        ("method", "method (METADATA, file sha256)"),
        ("dataset", "dataset (id, revision, content hash)"),
    ):
        a, b = first[key], other[key]
        if key == "method":  # a method file is its METADATA and sha256, wherever it was run from
            a, b = _method_identity(a), _method_identity(b)
        if key == "dataset":
            a = {k: a.get(k) for k in ("id", "revision", "sha256", "n_images")}
            b = {k: b.get(k) for k in ("id", "revision", "sha256", "n_images")}
        if a != b:
            raise HfusError(differ_message(name, name0, label, a, b, what))


def _method_identity(method: dict[str, Any]) -> dict[str, Any]:
    """A record's method section without the path a method file was given by (``source`` = ``file:…``): the
    same file run from another folder or machine is the same method (its sha256 says so)."""
    if str(method.get("source", "")).startswith("file:") and method.get("sha256"):
        return {k: v for k, v in method.items() if k != "source"}
    return method


def differ_message(name: str, name0: str, label: str, a: dict[str, Any], b: dict[str, Any], what: str) -> str:
    """The one-line refusal for two records (files ``name``, ``name0``) whose ``label`` sections differ."""
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return (
        f"{name} and {name0} differ in the {label}: {', '.join(diff)} "
        f"({b.get(diff[0])!r} vs {a.get(diff[0])!r}); they are not {what} of one run"
    )


def _check_together(shards: list[dict[str, Any]]) -> None:
    """Raise HfusError unless the shard records are the shards of one run: same method, dataset, options,
    shard count and flags (:func:`_check_same`), every index once, the same checkpoint per (arch, fold)."""
    for sh in shards[1:]:
        _check_same(shards[0], sh)
    count = shards[0]["shard"]["count"]
    seen: dict[int, str] = {}
    for sh in shards:
        idx = sh["shard"]["index"]
        if idx in seen:
            raise HfusError(f"shard {idx}/{count} given twice ({seen[idx]} and {sh['_path']})")
        seen[idx] = sh["_path"]
    missing = sorted(set(range(count)) - set(seen))
    if missing:
        raise HfusError(
            f"shard(s) {', '.join(f'{i}/{count}' for i in missing)} missing: a merge needs all {count} "
            f"shards (got {', '.join(f'{i}/{count}' for i in sorted(seen))})"
        )
    checkpoints: dict[tuple[str, int], tuple[str, dict]] = {}
    for sh in shards:
        for entry in sh["folds"]:
            key = (entry["arch"], int(entry["fold"]))
            if key in checkpoints and checkpoints[key][1] != entry["checkpoint"]:
                raise HfusError(
                    f"{sh['_path']} used another {key[0]} fold {key[1]} checkpoint "
                    f"({entry['checkpoint'].get('sha256')}) than {checkpoints[key][0]} "
                    f"({checkpoints[key][1].get('sha256')})"
                )
            checkpoints.setdefault(key, (sh["_path"], entry["checkpoint"]))


def _check_same(first: dict[str, Any], sh: dict[str, Any]) -> None:
    """Raise HfusError unless shard ``sh`` has ``first``'s method, dataset, options, count and flags."""
    name0, name = first["_path"], sh["_path"]
    require_same_source(first, sh, "shards")
    mine, theirs = device_kind(sh["options"]), device_kind(first["options"])
    if mine != theirs:
        diff = sorted(k for k in first["options"] if mine.get(k) != theirs.get(k))
        raise HfusError(
            f"{name} and {name0} were run with different options ({', '.join(diff)}); "
            "every shard must use the same flags"
        )
    if sh["shard"]["count"] != first["shard"]["count"]:
        raise HfusError(f"{name} is a shard of {sh['shard']['count']}, {name0} of {first['shard']['count']}")
    if sh.get("save_maps") != first.get("save_maps"):
        raise HfusError(f"{name} and {name0} differ in --save-maps; run every shard with the same flags")


def merge_shards(
    paths: Sequence[str | Path], *, out: str | Path, figure: bool = True, command: str | None = None
) -> Result:
    """Check that the shard records ``paths`` belong together and complete each other, score them as one run
    and write the record (+ maps with ``--save-maps`` shards, + figure) under ``out``; returns the result."""
    from .batches import fold_sizes, plan_batches
    from .config import RunConfig
    from .data.dataset import dataset_provenance, load_dataset
    from .results import build_result
    from .runner import score_shares, write_outputs

    if not paths:
        raise HfusError("give the shard records to merge (<method>.shard-I-of-N.json, one per shard)")
    shards = [load_shard(p) for p in paths]
    _check_together(shards)
    first = min(shards, key=lambda sh: sh["shard"]["index"])
    record_stub = {"options": first["options"], "dataset": first["dataset"]}
    config = RunConfig.from_record(record_stub, device=str(first["options"]["device"]).split(":")[0])
    ds = load_dataset(first["dataset"]["id"], revision=first["dataset"]["revision"])
    prov = dataset_provenance(ds)
    if prov.get("sha256") != first["dataset"].get("sha256"):
        raise HfusError(
            f"the shards were made on {first['dataset']['id']} with content hash "
            f"{first['dataset'].get('sha256')}, this machine loads {prov.get('sha256')}; "
            "merge where the data are the same"
        )
    shares = _shares(shards, plan_batches(fold_sizes(ds, config), int(first["options"]["batch_size"])))
    method_name = first["method"]["name"]
    save_maps = bool(first.get("save_maps"))
    runs = score_shares(method_name, config, ds, shares, keep_maps=save_maps or figure)
    threads = sorted({sh.threads for sh in shares})
    env = dict(first["environment"])
    env["run"] = {
        "launcher": "shards",
        "world_size": 1,
        "shards": first["shard"]["count"],
        "threads_per_process": threads[0] if len(threads) == 1 else threads,
        "merge_command": command,
    }
    result = build_result(
        first["method"],
        runs,
        options=first["options"],
        dataset=first["dataset"],
        environment=env,
        command=_strip_shard_flag(first.get("command")),
    )
    write_outputs(result, runs, ds, out, method_name, save_maps=save_maps, figure=figure)
    return result


def _shares(shards: list[dict[str, Any]], plan: Sequence[Batch]) -> list[ShareOutput]:
    """The shards' batch outputs as the runner's shares, checked to cover ``plan`` exactly once."""
    from .runner import ShareOutput

    expected = {(b.arch, b.fold, b.start, b.stop) for b in plan}
    got: dict[tuple[str, int, int, int], str] = {}
    shares = []
    for sh in shards:
        name = sh["_path"]
        if sh["shard"]["n_batches_plan"] != len(plan):
            raise HfusError(
                f"{name} was cut from a plan of {sh['shard']['n_batches_plan']} batches, "
                f"this run has {len(plan)}"
            )
        outputs = []
        for j, o in enumerate(sh["outputs"]):
            key = (o["arch"], int(o["fold"]), int(o["start"]), int(o["stop"]))
            if key not in expected:
                raise HfusError(f"{name}: batch {key} is not part of the run's plan")
            if key in got:
                raise HfusError(f"{name}: batch {key} is also in {got[key]} (the shards overlap)")
            got[key] = name
            outputs.append(_batch_output(name, j, o, sh["_maps"], key))
        folds = {
            (e["arch"], int(e["fold"])): {"checkpoint": e["checkpoint"], "cost": e["cost"]}
            for e in sh["folds"]
        }
        threads = sh["environment"]["run"]["threads_per_process"]
        shares.append(ShareOutput(outputs=outputs, folds=folds, threads=threads))
    missing = sorted(expected - set(got))
    if missing:
        raise HfusError(
            f"the shards do not cover the run: {len(missing)} batch(es) missing, e.g. {missing[0]}"
        )
    return shares
