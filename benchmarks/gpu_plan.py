"""The evaluate runs of `gpu_session.sh`'s step d): a line ``<method> <architecture>``, cheapest first.

    python benchmarks/gpu_plan.py --methods "ig scorecam" --models googlenet,resnet101 --folds 0 \
        --records /tmp/hfus-gpu/lb

``--methods``: names separated by spaces or commas, or ``all`` (every built-in). A (method, architecture)
is left out, and said so on stderr, where the method is undefined on the architecture (n/a, PROTOCOL §5)
or its row (method, track ``hfus-synth``, architecture, folds) is held: by a leaderboard entry, or by a
result record in ``--records`` (an earlier call on the same machine made it). Order:
the default architecture's runs first (the default table's missing rows), then the others'; within each,
by the default table's FE/img of the method (its committed MobileNetV2 fold-0 entry; machine-independent;
DeepLift and Guided Backprop, n/a there, at the cost of the method whose passes they make), methods without
one after the others, those of :data:`COSTLIEST` last in its order, the rest in the order
given. Among the other architectures the cheap runs (at most :data:`CHEAP_FE` FE/img) come first, one
architecture after the other in the order given (a checkpoint trained in the same session is waited for only
when its architecture's turn comes), then the costly ones of every architecture, cheapest first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hfus_xai_bench.compare import fe_per_image
from hfus_xai_bench.config import RunConfig, parse_known
from hfus_xai_bench.constants import DEFAULT_ARCH, SYNTH_DATASET
from hfus_xai_bench.explainers.loader import load_builtin
from hfus_xai_bench.explainers.registry import BUILTINS
from hfus_xai_bench.jsonio import load_json
from hfus_xai_bench.leaderboard import load_entries
from hfus_xai_bench.leaderboard.entries import entry_from_result, entry_keys

ENTRIES = Path(__file__).resolve().parent.parent / "leaderboard" / "entries"
#: the study's costliest methods, cheapest first (forwards per explanation: 400 / 484 / 576 / channels)
COSTLIEST = ("occlusion45", "occlusion30", "occlusion15", "scorecam")
#: FE/img up to which a run is cheap (the sanity baselines, CAMs and one-pass gradient methods: 27-111)
CHEAP_FE = 200.0
#: built-ins without a default-table row (n/a on MobileNetV2 and GoogLeNet), ordered at the cost of the
#: method whose passes they make: one forward and backward per explanation (DeepLift's over the image and
#: its baseline together), so that they run with the cheap rows, not after Score-CAM
PRICED_AS = {"deeplift": "inputxgradient", "guidedbackprop": "saliency"}


def default_table_cost(entries: list[dict]) -> dict[str, float]:
    """FE/img per method of the default table (MobileNetV2, fold 0, hfus-synth), and of :data:`PRICED_AS`'s
    methods; another architecture's fold-0 entry of the method has no MobileNetV2 cost and is passed over."""
    cost = {
        e["method"]["name"]: fe
        for e in entries
        if e["track"] == SYNTH_DATASET
        and e["options"]["folds"] == [0]
        and (fe := fe_per_image(e, DEFAULT_ARCH)) is not None
    }
    return cost | {m: cost[like] for m, like in PRICED_AS.items() if m not in cost and like in cost}


def held_rows(entries: list[dict], records_dir: Path | None) -> dict[tuple, str]:
    """Why each held row (:func:`entry_keys`) is held: by an entry, or by a record in ``records_dir``."""
    held = {key: "a leaderboard entry holds it" for e in entries for key in entry_keys(e)}
    for path in sorted(records_dir.glob("*.json")) if records_dir else ():
        record = load_json(path, "result record")
        for key in entry_keys(entry_from_result(record)):
            held.setdefault(key, f"the record {path.name} of an earlier call holds it")
    return held


def plan(
    methods: list[str],
    models: tuple[str, ...],
    folds: tuple[int, ...],
    entries_dir: Path = ENTRIES,
    records_dir: Path | None = None,
) -> list[tuple[str, str]]:
    """The (method, architecture) runs left to do, the default architecture's first, then the others' cheap
    runs architecture by architecture, then cheapest first; what is left out goes to stderr."""
    entries = load_entries(entries_dir)
    held = held_rows(entries, records_dir)
    cost = default_table_cost(entries)
    last = {m: k for k, m in enumerate(COSTLIEST)}
    order = sorted(
        range(len(methods)), key=lambda i: (cost.get(methods[i], float("inf")), last.get(methods[i], -1), i)
    )
    runs = []
    for m in (methods[i] for i in order):
        method = load_builtin(m)
        for arch in models:
            if not method.applicable(arch):
                print(f"skip {m} on {arch}: n/a ({method.not_applicable(arch)})", file=sys.stderr)
            elif (m, SYNTH_DATASET, arch, folds) in held:
                print(f"skip {m} on {arch}: {held[m, SYNTH_DATASET, arch, folds]}", file=sys.stderr)
            else:
                runs.append((m, arch))

    def group(run: tuple[str, str]) -> tuple[bool, bool, int]:
        cheap = cost.get(run[0], float("inf")) <= CHEAP_FE
        return run[1] != DEFAULT_ARCH, not cheap, models.index(run[1]) if cheap else 0

    return sorted(runs, key=group)  # stable: cost order within each group


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", required=True, help="built-ins (spaces or commas) or 'all'")
    parser.add_argument("--models", default="mobilenet_v2", help="architectures: a comma list or 'all'")
    parser.add_argument("--folds", default="0", help="a comma list of folds or 'all'")
    parser.add_argument("--records", type=Path, help="a folder of result records whose rows are held too")
    parser.add_argument(
        "--entries", type=Path, default=ENTRIES, help="the leaderboard entries (default: the repo's)"
    )
    args = parser.parse_args()
    methods = parse_known(args.methods.replace(" ", ","), list(BUILTINS), "method")
    config = RunConfig.build(models=args.models, folds=args.folds)
    for m, arch in plan(methods, config.models, config.folds, args.entries, args.records):
        print(m, arch)


if __name__ == "__main__":
    main()
