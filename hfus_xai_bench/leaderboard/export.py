"""The leaderboard as a Hugging Face dataset folder (``hfus-bench leaderboard export DIR``) and back.

Written from the entries alone, deterministically (sorted rows, no timestamps):

- ``data/scores.parquet`` (config ``scores``, the default): one row per entry × architecture × fold ×
  image, with the entry's file stem, method, source, track, dataset id + revision, the checkpoint's
  sha256, and one column per reported output of the entry's ``per_image_scores`` (record keys such as
  ``hit_rate@1``; null where the image failed or the value is undefined);
- ``data/summary.parquet`` (config ``summary``): one row per entry × architecture with the table's
  numbers: ranking status, counts, test accuracy and, per output, the mean and its 95 % CI;
- ``README.md``: a dataset card whose YAML declares both configs, and which states the benchmark and
  protocol versions, every dataset revision and content hash, and the sha256 of each parquet file and
  each entry.

``datasets.load_dataset(DIR)`` reads the scores, ``load_dataset(DIR, "summary")`` the summary;
:func:`load_results` returns either as a pandas DataFrame, from an exported folder or straight from
an entries folder (default: the committed leaderboard).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..constants import BENCHMARK_VERSION
from ..errors import HfusError
from .entries import ENTRIES_DIR, entry_filename, load_entries
from .tables import status

SCORES, SUMMARY = "scores", "summary"
_ID_COLUMNS = ("entry", "method", "source", "track", "dataset", "dataset_revision", "arch", "fold")


def _score_keys(entries: Sequence[dict[str, Any]]) -> list[str]:
    keys = {
        key
        for e in entries
        for folds in (e.get("per_image_scores") or {}).values()
        for part in folds.values()
        for key in part["scores"]
    }
    return sorted(keys)


def _ids(entry: dict[str, Any], arch: str) -> dict[str, Any]:
    return {
        "entry": entry_filename(entry).removesuffix(".json"),
        "method": entry["method"]["name"],
        "source": entry["method"].get("source", ""),
        "track": entry["track"],
        "dataset": entry["dataset"]["id"],
        "dataset_revision": entry["dataset"]["revision"],
        "arch": arch,
    }


def score_rows(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One dict per entry × arch × fold × image: ids, ``image_id``, ``checkpoint_sha256`` and every
    per-image score."""
    keys = _score_keys(entries)
    rows = []
    for e in entries:
        for arch, folds in sorted((e.get("per_image_scores") or {}).items()):
            for fold, part in sorted(folds.items(), key=lambda kv: int(kv[0])):
                base = {**_ids(e, arch), "fold": int(fold)}
                sha = e["checkpoints"].get(arch, {}).get(str(fold), {}).get("sha256")
                for i, image_id in enumerate(part["image_ids"]):
                    row = {**base, "image_id": image_id, "checkpoint_sha256": sha}
                    for key in keys:
                        values = part["scores"].get(key)
                        row[key] = None if values is None else values[i]
                    rows.append(row)
    return rows


def summary_rows(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One dict per entry × arch: status, counts, accuracy, and per score its mean and 95 % CI (the
    table's numbers)."""
    keys = _score_keys(entries)
    rows = []
    for e in entries:
        for arch in sorted(e["counts"]):
            if arch == "total":
                continue
            counts = e["counts"][arch]
            row = {
                **_ids(e, arch),
                "status": status(e, arch),
                "n_images": counts["n_images"],
                "n_evaluated": counts["n_evaluated"],
                "n_failed": counts["n_failed"],
                "accuracy": e.get("classification", {}).get(arch, {}).get("accuracy"),
            }
            for key in keys:
                summary = e["metrics"].get(key, {}).get(arch) or {}
                ci = summary.get("ci95") or [None, None]
                row[key], row[f"{key}/ci_low"], row[f"{key}/ci_high"] = summary.get("mean"), ci[0], ci[1]
            rows.append(row)
    return rows


def _parquet_bytes(rows: list[dict[str, Any]], first: Sequence[str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rows:
        raise HfusError("the leaderboard has no entries to export; add one with `hfus-bench leaderboard add`")
    columns = list(first) + [c for c in rows[0] if c not in first]
    table = pa.table({c: [r.get(c) for r in rows] for c in columns})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dataset_card(entries: Sequence[dict[str, Any]], files: dict[str, str]) -> str:
    """The folder's ``README.md``: configs, versions, dataset revisions and content hashes, file hashes."""
    tracks = sorted(
        {(e["track"], e["dataset"]["id"], e["dataset"]["revision"], e["dataset"]["sha256"]) for e in entries}
    )
    protocols = sorted({str(e["protocol_version"]) for e in entries})
    versions = sorted({str(e["benchmark_version"]) for e in entries})
    entry_lines = [
        f"| `{entry_filename(e)}` | {e['method']['name']} | {e['track']} | `{_sha(_canonical(e))}` |"
        for e in entries
    ]
    return "\n".join(
        [
            "---",
            "license: mit",
            "pretty_name: hfus-xai-bench leaderboard",
            "tags:",
            "  - hfus-xai-bench",
            "  - explainability",
            "  - saliency",
            "configs:",
            f"  - config_name: {SCORES}",
            f"    data_files: data/{SCORES}.parquet",
            "    default: true",
            f"  - config_name: {SUMMARY}",
            f"    data_files: data/{SUMMARY}.parquet",
            "---",
            "",
            "# hfus-xai-bench leaderboard results",
            "",
            f"Exported by hfus-xai-bench {BENCHMARK_VERSION} from {len(entries)} leaderboard entries "
            f"(benchmark version(s) {', '.join(versions)}; protocol version(s) {', '.join(protocols)}).",
            "",
            f"- `{SCORES}` (default): one row per entry × architecture × fold × image, every per-image score "
            "(null: the image failed or the value is undefined).",
            f"- `{SUMMARY}`: one row per entry × architecture: status, counts, accuracy, "
            "mean and 95 % CI per score "
            "(mean over folds of the per-fold means over images, as the leaderboard table).",
            "",
            "```python",
            "import datasets",
            f'scores = datasets.load_dataset("<this folder or repo>", "{SCORES}", split="train")',
            "import hfus_xai_bench as hb",
            'summary = hb.load_results("<this folder>", table="summary")  # a pandas DataFrame',
            "```",
            "",
            "## Data",
            "",
            "| track | dataset | revision | content sha256 |",
            "|---|---|---|---|",
            *[f"| {t} | {d} | {r} | `{s}` |" for t, d, r, s in tracks],
            "",
            "## Files",
            "",
            "| file | sha256 |",
            "|---|---|",
            *[f"| `{name}` | `{sha}` |" for name, sha in sorted(files.items())],
            "",
            "## Entries (sha256 of the canonical JSON: sorted keys, no spaces)",
            "",
            "| entry | method | track | sha256 |",
            "|---|---|---|---|",
            *entry_lines,
            "",
        ]
    )


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def export_leaderboard(out: str | Path, entries_dir: str | Path = ENTRIES_DIR) -> Path:
    """Write the entries of ``entries_dir`` as a Hugging Face dataset folder ``out``; returns ``out``."""
    entries = load_entries(entries_dir)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HfusError(f"{out} is a file; give a folder for the exported dataset")
    parquet = {
        f"data/{SCORES}.parquet": _parquet_bytes(score_rows(entries), (*_ID_COLUMNS, "image_id")),
        f"data/{SUMMARY}.parquet": _parquet_bytes(summary_rows(entries), _ID_COLUMNS[:-1]),
    }
    (out / "data").mkdir(parents=True, exist_ok=True)
    for name, data in parquet.items():
        (out / name).write_bytes(data)
    (out / "README.md").write_text(dataset_card(entries, {n: _sha(d) for n, d in parquet.items()}))
    return out


def load_results(source: str | Path | None = None, table: str = SCORES) -> Any:
    """The leaderboard's ``scores`` (per image) or ``summary`` table as a pandas DataFrame.

    ``source``: a folder written by ``hfus-bench leaderboard export``, or an entries folder (default:
    the committed leaderboard entries).
    """
    import pandas as pd

    if table not in (SCORES, SUMMARY):
        raise HfusError(f"table must be {SCORES!r} or {SUMMARY!r}, got {table!r}")
    folder = Path(source) if source is not None else Path(ENTRIES_DIR)
    exported = folder / "data" / f"{table}.parquet"
    if exported.is_file():
        return pd.read_parquet(exported)
    if not folder.is_dir():
        raise HfusError(f"{folder} is neither an exported leaderboard folder nor an entries folder")
    entries = load_entries(folder)
    rows = score_rows(entries) if table == SCORES else summary_rows(entries)
    return pd.DataFrame(rows)
