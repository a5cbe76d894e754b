"""Register what one GPU session (`benchmarks/gpu_session.sh`) returned: checkpoints and leaderboard rows.

Usage (in the repository root, after the device call):

    .venv/bin/python benchmarks/gpu_register.py FILES_AT            # what would change (dry run)
    .venv/bin/python benchmarks/gpu_register.py FILES_AT --apply    # change it

FILES_AT is the folder the device call's files came back to (`cards.tar.gz`, `results.tar.gz`,
`ckpt.tar.0`, ...), or a folder that `hfus-bench train --out FILES_AT` wrote (cards and weights as they are:
a checkpoint trained on the CPU registers the same way). It

1. unpacks them into a temporary folder, reassembles the weights and checks every returned weights file
   against its card's sha256;
2. reads the determinism check (the second run's card in `det/` against the checkpoint of the same name)
   and writes both sha256 into that checkpoint's card (`environment.determinism`);
3. registers each checkpoint: its card (and weights, where they came back) into
   `hfus_xai_bench/checkpoints/` with `published` = `repository` (weights returned: kept in the git
   checkout, not in the wheel) or `no` (registered by sha256 only); an existing card of the same name is
   never replaced (a checkpoint trained earlier stays the reference);
4. adds each returned result record as a leaderboard entry (`hfus-bench leaderboard add`) and re-renders;
   it says why it skips a record: a checkpoint not registered, a `--limit` (dry-run) record, or a row that
   another entry already holds (`leaderboard.entry_conflict`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from hfus_xai_bench.leaderboard import entry_conflict, entry_from_result
from hfus_xai_bench.models.checkpoints import CARD_SCHEMA
from hfus_xai_bench.results import Result

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hfus_xai_bench" / "checkpoints"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unpack(files_at: Path, work: Path) -> None:
    """The tarballs into ``work`` (``ckpt/``, ``det/``, ``lb/``), the weights' parts joined first; cards
    that lie in ``files_at`` itself (`hfus-bench train --out`) go to ``ckpt/`` with their weights."""
    for name in ("cards.tar.gz", "results.tar.gz"):
        if (files_at / name).is_file():
            with tarfile.open(files_at / name) as tar:
                tar.extractall(work, filter="data")
    parts = sorted(files_at.glob("ckpt.tar.*"), key=lambda p: int(p.suffix[1:]))
    if parts:
        joined = work / "ckpt.tar"
        with joined.open("wb") as out:
            for part in parts:
                out.write(part.read_bytes())
        (work / "ckpt").mkdir(exist_ok=True)
        with tarfile.open(joined) as tar:
            tar.extractall(work / "ckpt", filter="data")
    for card in sorted(files_at.glob("*.json")):
        if json.loads(card.read_text()).get("schema") == CARD_SCHEMA:
            (work / "ckpt").mkdir(exist_ok=True)
            for path in (card, card.with_suffix(".safetensors")):
                if path.is_file():
                    shutil.copyfile(path, work / "ckpt" / path.name)


def determinism(work: Path) -> dict[str, dict]:
    """name -> {device, sha256 of both runs, identical} for each checkpoint trained twice."""
    out = {}
    for second in sorted((work / "det").glob("*.json")):
        first = work / "ckpt" / second.name
        if not first.is_file():
            print(f"determinism: {second.stem}: no first run among the checkpoints (not its full recipe?)")
            continue
        a, b = json.loads(first.read_text()), json.loads(second.read_text())
        out[a["name"]] = {
            "device_name": a["environment"].get("device_name"),
            "runs_sha256": [a["sha256"], b["sha256"]],
            "identical": a["sha256"] == b["sha256"],
        }
        print(f"determinism: {a['name']}: {'IDENTICAL' if a['sha256'] == b['sha256'] else 'DIFFERENT'}")
    return out


def register_checkpoints(work: Path, checks: dict[str, dict], apply: bool) -> list[str]:
    """Copy each returned card (and weights) into the package folder; the names registered."""
    recipe = json.loads((PACKAGE / "mobilenet_v2_hfus-synth_fold0.json").read_text())
    registered = []
    for card_path in sorted((work / "ckpt").glob("*.json")):
        card = json.loads(card_path.read_text())
        differs = [k for k in ("epochs", "init", "seed", "dtype") if card[k] != recipe[k]]
        if differs or card["dataset"]["sha256"] != recipe["dataset"]["sha256"]:
            print(f"skipped {card_path.stem}: recipe or data not the default model's: {differs or 'data'}")
            continue
        weights = card_path.with_suffix(".safetensors")
        if weights.is_file() and sha256(weights) != card["sha256"]:
            sys.exit(f"{weights.name}: sha256 differs from its card: the transfer is broken; fetch it again")
        if (PACKAGE / card_path.name).exists():  # a reproduction: the same sha256 on the same device kind
            known = json.loads((PACKAGE / card_path.name).read_text())
            same = "the same sha256" if known["sha256"] == card["sha256"] else "ANOTHER sha256"
            where = f"{known['environment'].get('device_name')} → {card['environment'].get('device_name')}"
            print(f"kept the registered {card_path.stem}; the GPU run gave {same} ({where})")
            continue
        card["published"] = "repository" if weights.is_file() else "no"
        if card["name"] in checks:
            card["environment"]["determinism"] = checks[card["name"]]
        print(f"register {card['name']}: sha256 {card['sha256'][:12]}, published {card['published']}")
        unrecorded = [key for key in ("command", "counterfactual") if key not in card]
        if unrecorded:
            print(f"  its card has no {' and no '.join(unrecorded)}: trained before `train` recorded them")
        registered.append(card["name"])
        if apply:
            (PACKAGE / card_path.name).write_text(json.dumps(card, indent=2) + "\n")
            if weights.is_file():
                shutil.copyfile(weights, PACKAGE / weights.name)
    return registered


def add_entries(work: Path, registered: set[str], apply: bool) -> None:
    """`hfus-bench leaderboard add` for every returned record of all test images whose checkpoints are all
    registered (sha256 in ``registered``) and whose rows no other entry holds, then `leaderboard render`."""
    bench = [sys.executable, "-m", "hfus_xai_bench"]
    records = []
    for record in sorted((work / "lb").glob("*.json")):
        loaded = Result.load(record).record
        unknown = [
            f"{a} fold {k}"
            for a, folds in loaded["checkpoints"].items()
            for k, c in folds.items()
            if c["sha256"] not in registered
        ]
        if unknown:
            print(f"not added {record.name}: its checkpoints of {', '.join(unknown)} are not registered")
            continue
        if loaded["options"]["limit"] is not None:
            print(f"not added {record.name}: only the first {loaded['options']['limit']} images (a dry run)")
            continue
        conflict = entry_conflict(entry_from_result(loaded))
        if conflict:
            print(f"not added {record.name}: {conflict}")
            continue
        records.append(record)
        print(f"leaderboard add {record.name}")
        if apply:
            subprocess.run([*bench, "leaderboard", "add", str(record)], check=True, cwd=ROOT)
    if apply and records:
        subprocess.run([*bench, "leaderboard", "render"], check=True, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files_at", type=Path, help="the folder the device call's files came back to")
    parser.add_argument("--apply", action="store_true", help="change the checkout (default: dry run)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        unpack(args.files_at, work)
        checks = determinism(work)
        names = register_checkpoints(work, checks, args.apply)
        cards = [*PACKAGE.glob("*.json"), *(work / "ckpt").glob("*.json")]
        shas = {json.loads(c.read_text())["sha256"] for c in cards if c.stem in names or c.parent == PACKAGE}
        add_entries(work, shas, args.apply)
    verb = "registered" if args.apply else "would register"
    print(f"{verb} {len(names)} checkpoint(s); then: `make test`, commit the cards, weights and entries")


if __name__ == "__main__":
    main()
