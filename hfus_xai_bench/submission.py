"""``hfus-bench submit``: prepare ``submissions/<method>/`` for a method file (:mod:`.verify` checks one).

:func:`submit` runs the contract check (``hfus-bench check``) and ``evaluate --save-maps`` and writes
the folder :data:`~hfus_xai_bench.verify.SUBMISSION_FILES` names: ``method.py``, ``README.md``
(:func:`fill_readme`: the record's metadata, headline and cost; TODOs for the rest), ``result.json``
(the full record, per_image included) and ``maps.npz`` (every map the maps-only metrics read; its
sha256 is in the record).
"""

from __future__ import annotations

import json
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import HfusError
from .metrics import registry

if TYPE_CHECKING:
    from .config import RunConfig
    from .results import Result

__all__ = ["CHECKLIST", "README_TEMPLATE", "fill_readme", "submit"]

# ------------------------------------------------------------------------------------ submit

README_TEMPLATE = """# {name}

<!-- filled by `hfus-bench submit`; complete every TODO before opening the pull request -->

**What it is:** TODO: one paragraph: the idea, the family (CAM / attribution / other), what it needs
(gradients, forward passes).

| field | value |
|---|---|
| method name | `{name}` |
| kind | {kind} |
| authors | {authors} |
| paper / home page | {url} |
| licence of method.py | {licence} |
| hyper-parameters | `{hyperparameters}` |
| tuned on | {tuning_split} (must not be a test fold) |
| dataset | {dataset} |
| models / folds | {models} / {folds} |
| evaluated images | {n_evaluated} of {n_images} ({n_failed} failed) |
| HR1 (hit_rate@1) | {hr1} |
| cost | {cost} |
| produced by | `{command}` |

## Citation

```bibtex
{citation}
```

## Checklist

- [ ] No tuning on test folds (tuning split stated above).
- [ ] Licence of `method.py` stated above and compatible with redistribution in this repository.
- [ ] Cost reported (FE/img, seconds per image and device are in result.json and above).
- [x] `hfus-bench check method.py` passed (run by `hfus-bench submit`).
- [ ] `hfus-bench verify submissions/{name}` passes locally.
"""


def _fmt_hr1(record: dict[str, Any]) -> str:
    parts = []
    for arch, s in record["metrics"][registry.HEADLINE].items():
        mean, (lo, hi) = s["mean"], s["ci95"]
        parts.append(
            f"{arch}: "
            + ("n/a" if mean is None else f"{mean:.3f}" + ("" if lo is None else f" [{lo:.3f}, {hi:.3f}]"))
        )
    return "; ".join(parts)


def _fmt_cost(record: dict[str, Any]) -> str:
    """Per architecture FE/img (PROTOCOL §6: (forward rows + 2 × backward rows, §3's repeat excluded) /
    images, the cost any machine can compare) and seconds per image on the machine that made the record."""
    parts = []
    for arch, c in record["cost"].items():
        fe = c.get("fe_per_image")
        parts.append(
            f"{arch}: {'n/a' if fe is None else f'{fe:.1f}'} FE/img, {c['seconds_per_image']:.4f} s/img"
        )
    return "; ".join(parts)


def fill_readme(record: dict[str, Any]) -> str:
    """The submission's README.md: the template filled from ``record`` (TODO where the metadata is silent)."""
    m, o, t = record["method"], record["options"], record["counts"]["total"]
    env = record["environment"]
    authors = m.get("authors")
    return README_TEMPLATE.format(
        name=m["name"],
        kind=m["kind"],
        authors=", ".join(authors) if isinstance(authors, list) else (authors or "TODO"),
        url=m.get("url") or "TODO",
        licence=m.get("licence") or "TODO",
        hyperparameters=json.dumps(m.get("hyperparameters") or {}, sort_keys=True),
        tuning_split=m.get("tuning_split") or "TODO",
        dataset=f"{record['dataset']['id']} @ {record['dataset']['revision']}",
        models=", ".join(o["models"]),
        folds=", ".join(map(str, o["folds"])),
        n_evaluated=t["n_evaluated"],
        n_images=t["n_images"],
        n_failed=t["n_failed"],
        hr1=_fmt_hr1(record),
        cost=f"{_fmt_cost(record)} on {env.get('device_name')} ({o['device']})",
        command=record["command"] or "",
        citation=(m.get("citation") or "TODO: BibTeX of the method").strip(),
    )


CHECKLIST = """Before opening the pull request (see CONTRIBUTING.md):
  [ ] no tuning on test folds (METADATA["tuning_split"] says which split you tuned on)
  [ ] licence of method.py stated (METADATA["licence"]) and in README.md
  [ ] cost reported (FE/img, s/img and device are in result.json; say if a GPU was needed)
  [x] hfus-bench check passed
  [ ] complete the TODOs in {readme}
  [ ] hfus-bench verify {folder}
"""


def submit(
    method: str | Path,
    config: RunConfig | None = None,
    *,
    out: str | Path | None = None,
    progress: bool = True,
    command: str | None = None,
    **options: Any,
) -> tuple[Path, Result]:
    """Run the contract check and ``evaluate --save-maps`` on a method file and write ``submissions/<name>/``.

    Args:
        method: the method file (``my_method.py``); copied into the folder as ``method.py``.
        config: the run (as for :func:`hfus_xai_bench.runner.evaluate`); None: built from ``options``.
        out: the folder (default ``submissions/<method name>``); must be absent or empty.
        progress: progress bars.
        command: what the record names as its command (the CLI passes its argv; default: the equivalent
            ``hfus-bench submit`` line).
        **options: :meth:`RunConfig.build` keywords, or changes to ``config``.

    Returns:
        (the folder, the result).
    """
    from .check import check_method
    from .config import RunConfig, require_leaderboard_precision
    from .explainers.loader import load_file
    from .runner import evaluate

    if config is None:
        config = RunConfig.build(**options)
    elif options:
        config = config.replace(**options)
    require_leaderboard_precision(config.precision, "this submission")
    file = Path(method)
    loaded = load_file(file)
    folder = Path(out) if out is not None else Path("submissions") / loaded.name
    if folder.exists() and any(folder.iterdir()):
        raise HfusError(f"{folder} already exists and is not empty; remove it or pass --out")
    check = check_method(loaded, arch=config.models[0], device="cpu")
    if not check.ok:
        failed = "; ".join(text for passed, text in check.lines if not passed)
        raise HfusError(f"`hfus-bench check {file}` failed ({failed}); fix the method first")
    if command is None:
        command = shlex.join(["hfus-bench", "submit", str(file), *config.cli_args()])
    with tempfile.TemporaryDirectory() as tmp:
        result = evaluate(
            loaded, config, out=tmp, save_maps=True, figure=False, progress=progress, command=command
        )
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / result.record["maps_file"]["path"], folder / "maps.npz")
    result.record["maps_file"]["path"] = "maps.npz"
    result.save(folder / "result.json")
    shutil.copyfile(file, folder / "method.py")
    (folder / "README.md").write_text(fill_readme(result.record))
    return folder, result
