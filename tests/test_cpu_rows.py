"""benchmarks/cpu_rows.sh: shards run once each (a later call resumes), one thread each, then one merge.

The script's logic is tested against a stand-in for `hfus-bench` that logs its calls and writes the files
the real command writes; the real evaluate/merge pair is tested in tests/test_runner.py and
docs/SCALING.md's guarantees."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cpu_rows.sh"

FAKE = """#!/usr/bin/env bash
echo "$OMP_NUM_THREADS $*" >> "$CALLS"
command=$1
while [ $# -gt 0 ]; do
  case $1 in --out) out=$2; shift ;; --shard) shard=$2; shift ;; --folds) folds=$2; shift ;; esac
  shift
done
if [ "$command" = evaluate ]; then
  [ "$shard" = "${FAIL_SHARD:-none}" ] && exit 3
  [ "$folds" = "${FAIL_FOLD:-none}" ] && exit 3
  touch "$out/$METHOD_STEM.shard-${shard%/*}-of-${shard#*/}.maps.npz"
  touch "$out/$METHOD_STEM.shard-${shard%/*}-of-${shard#*/}.json"
else
  mkdir -p "$out"
  printf '{"merged": "%s"}' "$out" > "$out/$METHOD_STEM.json"
fi
"""


def _run(
    tmp_path: Path, args: tuple[str, ...] = (SCRIPT.name, "scorecam", "googlenet", "0"), **env: str
) -> subprocess.CompletedProcess:
    """Run a benchmarks/ script (``args``: its file name and arguments) with the stand-in `hfus-bench`."""
    fake = tmp_path / "hfus-bench"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    environ = {
        **os.environ,
        "HFUS_BENCH": str(fake),
        "CALLS": str(tmp_path / "calls.log"),
        "OUT": str(tmp_path / "shards"),
        "METHOD_STEM": "scorecam",
        "JOBS": "2",
        **env,
    }
    script, *rest = args
    return subprocess.run(
        ["bash", str(SCRIPT.parent / script), *rest], env=environ, capture_output=True, text=True
    )


def _calls(tmp_path: Path) -> list[str]:
    return sorted((tmp_path / "calls.log").read_text().splitlines())


def test_each_shard_runs_once_with_one_thread_then_one_merge(tmp_path: Path) -> None:
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "scorecam.shard-1-of-8.json").touch()  # a shard finished before a stop
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr
    evaluations = [c for c in _calls(tmp_path) if " evaluate " in c]
    assert sorted(c.split("--shard ")[1].split()[0] for c in evaluations) == [
        f"{i}/8" for i in (0, 2, 3, 4, 5, 6, 7)
    ]
    assert all(
        c.startswith("1 evaluate scorecam --models googlenet --folds 0 --device cpu") for c in evaluations
    )
    merges = [c for c in _calls(tmp_path) if " merge " in c]
    assert len(merges) == 1 and merges[0].count(".shard-") == 8
    assert "shard 1/8: done before" in done.stdout and "leaderboard add" in done.stdout

    again = _run(tmp_path)  # everything is there: only the merge runs again
    assert again.returncode == 0
    assert len(_calls(tmp_path)) == len(evaluations) + 2


def test_a_failed_shard_stops_before_the_merge(tmp_path: Path) -> None:
    failed = _run(tmp_path, FAIL_SHARD="5/8", SHARDS="8")
    assert failed.returncode != 0
    assert "shard 5/8: failed, see" in failed.stderr
    assert not any(" merge " in c for c in _calls(tmp_path))
    resumed = _run(tmp_path)  # the failed shard (only) runs again, then the merge
    assert resumed.returncode == 0
    assert sum("--shard 5/8" in c for c in _calls(tmp_path)) == 2
    assert sum(" merge " in c for c in _calls(tmp_path)) == 1


def test_keep_carries_the_records_to_a_new_machine(tmp_path: Path) -> None:
    keep = tmp_path / "kept" / "scorecam.googlenet.0"  # one subfolder per row and folds
    failed = _run(tmp_path, KEEP=str(keep.parent), FAIL_SHARD="5/8")  # the first machine stops after 7 shards
    assert failed.returncode != 0
    assert sorted(p.name for p in keep.iterdir()) == sorted(
        f"scorecam.shard-{i}-of-8.{ext}" for i in (0, 1, 2, 3, 4, 6, 7) for ext in ("json", "maps.npz")
    )

    new_machine = tmp_path / "new"
    new_machine.mkdir()
    resumed = _run(new_machine, KEEP=str(keep.parent))  # an empty OUT there: the kept records are copied in
    assert resumed.returncode == 0, resumed.stderr
    assert [c.split("--shard ")[1].split()[0] for c in _calls(new_machine) if " evaluate " in c] == ["5/8"]
    assert (keep / "scorecam.shard-5-of-8.json").is_file() and (
        keep / "scorecam.shard-5-of-8.maps.npz"
    ).is_file()
    assert len(list((new_machine / "shards").glob("*.maps.npz"))) == 8  # each record's maps are there
    assert sum(" merge " in c for c in _calls(new_machine)) == 1
    assert resumed.stdout.count("done before") == 7


def _run_folds(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    work = {"OUT": str(tmp_path / "work"), "PARTS": str(tmp_path / "parts"), "SHARDS": "2"}
    return _run(tmp_path, ("cpu_folds.sh", "scorecam", "mobilenet_v2", "0 1 2"), **{**work, **env})


def test_folds_become_parts_one_at_a_time_then_one_combine(tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    stopped = _run_folds(tmp_path, FAIL_FOLD="1")  # a session ends (or a shard fails) in fold 1
    assert stopped.returncode != 0
    assert sorted(p.name for p in parts.iterdir()) == ["scorecam.mobilenet_v2.fold0.json"]
    assert json.loads((parts / "scorecam.mobilenet_v2.fold0.json").read_text()) == {
        "merged": str(tmp_path / "work" / "fold0" / "merged")
    }

    (tmp_path / "calls.log").unlink()
    done = _run_folds(
        tmp_path
    )  # the next session: fold 0's part is kept, folds 1 and 2 run, then the combine
    assert done.returncode == 0, done.stderr
    assert "fold 0: part there" in done.stdout and "leaderboard add" in done.stdout
    evaluated = {c.split("--folds ")[1].split()[0] for c in _calls(tmp_path) if " evaluate " in c}
    assert evaluated == {"1", "2"}
    assert sorted(p.name for p in parts.iterdir()) == [
        f"scorecam.mobilenet_v2.fold{k}.json" for k in (0, 1, 2)
    ]
    combine = [c for c in _calls(tmp_path) if " merge " in c and "/parts/" in c]
    assert len(combine) == 1 and combine[0].count("/parts/scorecam.mobilenet_v2.fold") == 3
    assert (tmp_path / "work" / "combined" / "scorecam.json").is_file()


def test_folds_keep_their_shards_apart(tmp_path: Path) -> None:
    keep = tmp_path / "kept"
    done = _run_folds(tmp_path, KEEP=str(keep))
    assert done.returncode == 0, done.stderr
    assert "done before" not in done.stdout  # fold 1 did not take fold 0's kept shards for its own
    evaluated = [c.split("--folds ")[1].split()[0] for c in _calls(tmp_path) if " evaluate " in c]
    assert sorted(evaluated) == ["0", "0", "1", "1", "2", "2"]
    assert sorted(p.name for p in keep.iterdir()) == [f"scorecam.mobilenet_v2.{k}" for k in (0, 1, 2)]
    assert all(len(list(run.iterdir())) == 4 for run in keep.iterdir())  # 2 shards: record + maps each
