"""BibTeX for the benchmark, its data and the work it ports (``hfus-bench cite``), and for one exact result.

The benchmark's version and year come from the installed package's metadata (the version, and the
year of the copyright line of the licence file shipped in the metadata). Nothing is invented: this
version is not published yet, so the entry says so instead of carrying a DOI or a URL. Fields of
third-party works we could not check against the publisher's page carry ``note = {verify: ...}``.
The built-in methods' references live in their ``METADATA`` (``explainers/``).
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from .constants import BENCHMARK_VERSION, PROTOCOL_VERSION

DISTRIBUTION = "hfus-xai-bench"
UNPUBLISHED = (
    "not yet published: this version has no DOI and no public URL; cite it by version and "
    "protocol version (both are in every result record)"
)


def package_version() -> str:
    """The installed version (package metadata); the source tree's version when not installed."""
    try:
        return importlib_metadata.version(DISTRIBUTION)
    except importlib_metadata.PackageNotFoundError:
        return BENCHMARK_VERSION


def _copyright_year(text: str | None) -> str | None:
    match = re.search(r"Copyright\s*(?:\(c\)|©)?\s*(\d{4})", text or "")
    return match.group(1) if match else None


def package_year() -> str | None:
    """The year of the licence's copyright line in the package metadata (a source checkout: its LICENSE
    file)."""
    try:
        dist = importlib_metadata.distribution(DISTRIBUTION)
    except importlib_metadata.PackageNotFoundError:
        dist = None
    for name in ("licenses/LICENSE", "LICENSE", "licenses/LICENSE.txt", "LICENSE.txt"):
        year = _copyright_year(dist.read_text(name) if dist is not None else None)
        if year:
            return year
    root = (
        Path(__file__).resolve().parent.parent
    )  # a source checkout (an editable install older than the licence)
    if (root / "pyproject.toml").is_file() and (root / "LICENSE").is_file():
        return _copyright_year((root / "LICENSE").read_text())
    return None


def _key(version: str) -> str:
    return "hfus_xai_bench_" + re.sub(r"[^0-9A-Za-z]+", "_", version)


def bibtex_entry(kind: str, key: str, fields: list[tuple[str, str | None]], width: int = 12) -> str:
    """One BibTeX entry: ``@kind{key,`` then one ``  name = {value}`` line per field with a value.

    Args:
        kind: the entry type (``misc``, ``software``, ``article``).
        key: the citation key.
        fields: (name, value) in order; a field whose value is None or empty is left out. A value is
            written inside one pair of braces as given (see :func:`_bib_text` for untrusted text).
        width: the names are padded to this width, so the ``=`` of an entry line up.

    Returns:
        The entry, without a trailing newline.
    """
    body = ",\n".join(f"  {name:<{width}} = {{{value}}}" for name, value in fields if value)
    return f"@{kind}{{{key},\n{body}\n}}"


def benchmark_bibtex(version: str | None = None, year: str | None = None) -> str:
    """The benchmark software at a fixed version (cite the version whose numbers you report)."""
    version = version or package_version()
    fields = [
        (
            "title",
            "{hfus-xai-bench}: a benchmark for saliency methods on CNNs for high-frequency ultrasound "
            "skin images",
        ),
        ("author", "{hfus-xai-bench developers}"),
        ("version", version),
        ("year", year or package_year()),
        ("note", f"protocol v{PROTOCOL_VERSION}; {UNPUBLISHED}"),
    ]
    return bibtex_entry("software", _key(version), fields, width=9)


DATASET_BIBTEX = bibtex_entry(
    "misc",
    "hfus_dataset_5p7fxjt7vs_v1",
    [
        (
            "title",
            "High-frequency ultrasound skin images (AD, CG, PS, ST) with epidermis, SLEB and tumour "
            "segmentations",
        ),
        ("author", "Czajkowska, Joanna and others"),
        ("howpublished", "Mendeley Data, V1"),
        ("year", "2021"),
        ("doi", "10.17632/5p7fxjt7vs.1"),
        ("url", "https://data.mendeley.com/datasets/5p7fxjt7vs/1"),
        ("note", "verify: title, author list, year and licence (probably CC BY 4.0) on the landing page"),
    ],
)

STUDY_CODE_BIBTEX = bibtex_entry(
    "software",
    "saliency_cnn_analysis",
    [
        (
            "title",
            "SaliencyCNNAnalysis: attention analysis of convolutional neural networks for classification "
            "of skin ultrasound images",
        ),
        ("author", "{annasli378}"),
        ("year", "2024"),
        ("url", "https://github.com/annasli378/SaliencyCNNAnalysis"),
        ("note", "commit aadd486 (2024-03-06); verify: author name"),
    ],
    width=6,
)

PAPER_BIBTEX = bibtex_entry(
    "article",
    "czajkowska2021sensors",
    [
        (
            "title",
            "Deep Learning-Based High-Frequency Ultrasound Skin Image Classification with Multicriteria "
            "Model Evaluation",
        ),
        (
            "author",
            "Czajkowska, Joanna and Badura, Pawe{\\l} and Korzekwa, Szymon and "
            "P{\\l}atkowska-Szczerek, Anna and S{\\l}owi{\\'n}ska, Monika",
        ),
        ("journal", "Sensors"),
        ("volume", "21"),
        ("number", "17"),
        ("pages", "5846"),
        ("year", "2021"),
        ("doi", "10.3390/s21175846"),
        ("note", "verify: title, first names and DOI"),
    ],
    width=7,
)


def cite(*, benchmark: bool = True, dataset: bool = True, study: bool = True, paper: bool = True) -> str:
    """The requested BibTeX entries, separated by blank lines."""
    parts = []
    if benchmark:
        parts.append(benchmark_bibtex())
    if dataset:
        parts.append(DATASET_BIBTEX)
    if study:
        parts.append(STUDY_CODE_BIBTEX)
    if paper:
        parts.append(PAPER_BIBTEX)
    return "\n\n".join(parts) + "\n"


def bibtex_balanced(text: str) -> bool:
    """A cheap well-formedness check: every entry starts with ``@type{key,`` and braces balance."""
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    entries = re.findall(r"@\w+\{[^,\s]+,", text)
    return depth == 0 and len(entries) == text.count("\n@") + text.startswith("@")


def _bib_text(text: Any) -> str:
    """A value safe inside a BibTeX ``{...}`` field (braces balanced, no newlines)."""
    out = str(text).replace("\n", " ")
    return out.replace("{", "(").replace("}", ")")


def cite_result(record: dict[str, Any]) -> str:
    """BibTeX for one exact result: benchmark and protocol version, dataset id, revision and content hash,
    checkpoint sha256 per (arch, fold), the method (with its file's sha256 or its own citation)."""
    method, ds = record["method"], record["dataset"]
    ckpts = [
        f"{arch} fold {fold} sha256 {c.get('sha256')}"
        for arch, folds in sorted(record["checkpoints"].items())
        for fold, c in sorted(folds.items())
    ]
    year = str(record.get("timestamp", ""))[:4]
    fields = [
        ("title", f"hfus-xai-bench result: {_bib_text(method['name'])} on {_bib_text(ds['id'])}"),
        ("author", "{" + _bib_text(_authors(method)) + "}"),
        (
            "howpublished",
            f"result record of hfus-xai-bench {record['benchmark_version']} "
            f"(protocol v{record['protocol_version']})",
        ),
        ("year", year if year.isdigit() else None),
        ("note", _result_note(record, ckpts)),
    ]
    parts = [
        bibtex_entry("misc", _result_key(record, ckpts), fields),
        benchmark_bibtex(version=record["benchmark_version"]),
    ]
    if method.get("citation"):
        parts.append(str(method["citation"]).strip())
    return "\n\n".join(parts) + "\n"


def _result_key(record: dict[str, Any], ckpts: list[str]) -> str:
    """``hfus_result_<method>_<8 hex>``: a hash of what makes the result (benchmark version, data, weights,
    method, options), so the same result gets the same key."""
    method = record["method"]
    fingerprint = json.dumps(
        [
            record["benchmark_version"],
            record["dataset"].get("sha256"),
            ckpts,
            method["name"],
            method.get("sha256"),
            record.get("options"),
        ],
        sort_keys=True,
    )
    name = re.sub(r"[^0-9A-Za-z]+", "_", method["name"])
    return f"hfus_result_{name}_{hashlib.sha256(fingerprint.encode()).hexdigest()[:8]}"


def _authors(method: dict[str, Any]) -> str:
    """The method's authors as BibTeX joins them (``unknown`` where it names none)."""
    authors = method.get("authors")
    if isinstance(authors, str):
        return authors
    return " and ".join(authors or []) or "unknown"


def _result_note(record: dict[str, Any], ckpts: list[str]) -> str:
    """The ``note`` field: dataset, checkpoints, method, headline, command, time; unpublished."""
    method, ds = record["method"], record["dataset"]
    where = method["source"] + (f", sha256 {method['sha256']}" if method.get("sha256") else "")
    headline = "; ".join(
        f"{arch}: {s['mean']:.3f}"
        for arch, s in record["metrics"].get("hit_rate@1", {}).items()
        if s["mean"] is not None
    )
    parts = (
        f"dataset {_bib_text(ds['id'])} revision {ds.get('revision')}, content sha256 {ds.get('sha256')}",
        "checkpoints: " + ", ".join(ckpts),
        f"method {_bib_text(method['name'])} ({_bib_text(where)})",
        f"hit_rate@1 {headline}" if headline else "",
        f"command: {_bib_text(record['command'])}" if record.get("command") else "",
        f"recorded {record.get('timestamp', '')}",
        UNPUBLISHED,
    )
    return "; ".join(part for part in parts if part)
