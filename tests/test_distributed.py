"""distributed.py + merge.py: torchrun ranks and job-array shards reproduce the single-process record (§8).

The run: Grad-CAM on the default track (shipped MobileNetV2, fold 0), 3 images in batches of 1, CPU,
one torch thread per process. Every record is compared with the single-process one: per-image values bitwise,
aggregates and CIs identical, the maps file byte-identical; only ``environment.run`` (how it was run), the
command, the timestamp and the measured cost differ. Bitwise holds because every process runs whole
batches of the same plan (same shapes, kernels and one thread each) on the same machine, and gathering or
merging only reorders whole batches.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import torch
from helpers import REPO, write_method

from hfus_xai_bench import distributed
from hfus_xai_bench.batches import Batch, plan_batches, share
from hfus_xai_bench.config import RunConfig
from hfus_xai_bench.distributed import RankContext, Shard, detect, gather_and_finish
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.merge import evaluate_shard, load_shard, merge_shards

ARGS = ["gradcam", "--limit", "3", "--batch-size", "1", "--device", "cpu", "--save-maps", "--quiet"]
#: what may differ between two records of the same run made in different ways
MAY_DIFFER = {"cost", "environment", "command", "timestamp"}


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "PYTEST_XDIST_WORKER")
    }
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TQDM_DISABLE="1")
    return env


#: environment variable that tags every process of one test job (inherited by torchrun's ranks, which
#: run in sessions of their own, so a process group cannot find them)
JOB_TAG = "HFUS_TEST_JOB"


def _job_processes(tag: str) -> list[int]:
    """Live (not zombie) processes whose environment carries ``JOB_TAG=tag``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if f"{JOB_TAG}={tag}".encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


class _Job:
    """A command started in a session of its own, tagged with ``JOB_TAG``; output to files (not pipes, which
    a surviving child would hold open)."""

    def __init__(self, cmd: list[str], **env: str) -> None:
        self.cmd, self.tag = cmd, uuid.uuid4().hex
        # the files live as long as the job (closed with it), so no context manager
        self.out = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.err = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env={**_env(), **env, JOB_TAG: self.tag},
            stdout=self.out,
            stderr=self.err,
            text=True,
            start_new_session=True,
        )

    def stop(self, grace: float = 10.0) -> list[int]:
        """Kill the launcher's group if still running; the tagged processes still alive after ``grace`` s
        are killed too and returned (a clean job leaves none)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        deadline = time.monotonic() + grace
        while (left := _job_processes(self.tag)) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return left

    def result(self) -> subprocess.CompletedProcess:
        self.out.seek(0)
        self.err.seek(0)
        return subprocess.CompletedProcess(self.cmd, self.proc.returncode, self.out.read(), self.err.read())


def _run(cmd: list[str], timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    """Run a job to its end (killed after ``timeout`` s); fails the test if a process of it outlives it."""
    job = _Job(cmd, **env)
    try:
        job.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        job.stop()
        pytest.fail(f"timed out after {timeout} s: {' '.join(cmd)}\n{job.result().stderr[-3000:]}")
    survivors = job.stop()
    result = job.result()
    assert survivors == [], f"processes outlived the job (killed now): {survivors}\n{result.stderr[-3000:]}"
    return result


def _torchrun() -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def _same_record(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in set(a) - MAY_DIFFER:
        # per_image values bitwise (JSON keeps float64 exactly), CIs, maps sha256
        assert a[key] == b[key], key
    assert {k: v for k, v in a["environment"].items() if k != "run"} == {
        k: v for k, v in b["environment"].items() if k != "run"
    }


@pytest.fixture(scope="module")
def single(synth_ds, tmp_path_factory) -> tuple[dict, Path]:
    """The single-process reference, one torch thread (a fresh process, as the ranks are)."""
    out = tmp_path_factory.mktemp("single")
    proc = _run([sys.executable, "-m", "hfus_xai_bench", "evaluate", *ARGS, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "gradcam.json").read_text())
    assert record["environment"]["run"] == {
        "launcher": "single process",
        "world_size": 1,
        "shards": None,
        "threads_per_process": 1,
    }
    return record, out


def test_two_ranks_with_gloo_reproduce_the_single_process_record(single, tmp_path) -> None:
    record, out = single
    proc = _run([*_torchrun(), "-m", "hfus_xai_bench", "evaluate", *ARGS, "--out", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("result:") == 1  # rank 0 prints, the other rank is silent
    ranked = json.loads((tmp_path / "gradcam.json").read_text())
    _same_record(ranked, record)
    assert ranked["environment"]["run"] == {
        "launcher": "torchrun",
        "world_size": 2,
        "shards": None,
        "threads_per_process": 1,
    }
    assert (tmp_path / "gradcam.maps.npz").read_bytes() == (out / "gradcam.maps.npz").read_bytes()
    assert (tmp_path / "gradcam.png").is_file()


def test_a_failing_rank_stops_the_job_with_one_message_and_writes_nothing(synth_ds, tmp_path) -> None:
    # a method's error on an image is counted per image; here rank 1 fails as a whole (the file cannot load)
    method = write_method(
        tmp_path,
        """
        import os

        if os.environ.get("RANK") == "1":
            raise ImportError("no such library here")

        def explain(model, images, targets, *, context):
            return images.mean(1)
    """,
        name="flaky.py",
    )
    out = tmp_path / "out"
    proc = _run(
        [
            *_torchrun(),
            "-m",
            "hfus_xai_bench",
            "evaluate",
            str(method),
            "--limit",
            "3",
            "--batch-size",
            "1",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if "rank 1 failed" in line]
    assert len(lines) == 1 and "ImportError" in lines[0] and lines[0].startswith("hfus-bench: error:"), (
        proc.stderr
    )
    assert not out.exists() or not any(out.iterdir())


def _faulty_job(tmp_path: Path, fault: str, ranks: tuple[str, ...] = ("1",)) -> list[str]:
    """A torchrun job (2 ranks, 2 images) whose method file, loaded by each rank inside its process group,
    marks the rank in ``$MARKS`` and then runs ``fault`` on ``ranks``."""
    method = write_method(
        tmp_path,
        f"""
        import os, signal, time
        from pathlib import Path

        Path(os.environ["MARKS"], "rank" + os.environ["RANK"]).touch()
        if os.environ["RANK"] in {ranks!r}:
            {fault}

        def explain(model, images, targets, *, context):
            return images.mean(1)
    """,
        name="faulty.py",
    )
    (tmp_path / "marks").mkdir()
    args = ["--limit", "2", "--batch-size", "1", "--device", "cpu", "--quiet", "--out", str(tmp_path / "out")]
    return [*_torchrun(), "-m", "hfus_xai_bench", "evaluate", str(method), *args]


def test_a_killed_rank_stops_the_job_and_no_process_outlives_it(synth_ds, tmp_path) -> None:
    cmd = _faulty_job(tmp_path, "os.kill(os.getpid(), signal.SIGKILL)")
    proc = _run(cmd, MARKS=str(tmp_path / "marks"))  # asserts that no process of the job is left
    assert proc.returncode != 0
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_hung_rank_stops_the_job_after_the_rank_timeout(synth_ds, tmp_path) -> None:
    cmd = _faulty_job(tmp_path, "time.sleep(3600)")
    tic = time.monotonic()
    proc = _run(cmd, MARKS=str(tmp_path / "marks"), HFUS_BENCH_RANK_TIMEOUT="5")
    assert proc.returncode != 0
    assert "did not arrive within 5 s" in proc.stderr, proc.stderr[-3000:]
    assert time.monotonic() - tic < 240  # not the 6-hour default
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_killing_the_launcher_takes_every_rank_with_it(synth_ds, tmp_path) -> None:
    """SIGKILL to torchrun (what a CI timeout does) cannot be forwarded: the ranks die with their parent."""
    cmd = _faulty_job(tmp_path, "time.sleep(3600)", ranks=("0", "1"))
    marks = tmp_path / "marks"
    job = _Job(cmd, MARKS=str(marks))
    try:
        deadline = time.monotonic() + 240
        while len(list(marks.iterdir())) < 2 and time.monotonic() < deadline and job.proc.poll() is None:
            time.sleep(0.5)  # both ranks joined their group (and asked to die with the launcher)
        assert len(list(marks.iterdir())) == 2, job.result().stderr[-3000:]
        os.killpg(
            job.proc.pid, signal.SIGKILL
        )  # the launcher's group only: each rank has a session of its own
        job.proc.wait()
        survivors = job.stop()
    finally:
        job.stop(grace=0)
    assert survivors == []


def _shards(tmp_path: Path, count: int = 3) -> list[Path]:
    config = RunConfig(limit=3, batch_size=1, device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same threads per process as the reference
    try:
        return [
            evaluate_shard(
                "gradcam",
                config,
                Shard(i, count),
                out=tmp_path,
                save_maps=True,
                progress=False,
                command=f"hfus-bench evaluate {' '.join(ARGS)} --shard {i}/{count}",
            )
            for i in range(count)
        ]
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shard_files(synth_ds, tmp_path_factory) -> list[Path]:
    return _shards(tmp_path_factory.mktemp("shards"))


def test_three_shards_merge_into_the_single_process_record(single, shard_files, tmp_path) -> None:
    record, out = single
    assert [load_shard(p)["shard"]["batches"] for p in shard_files] == [
        [["mobilenet_v2", 0, 0, 1]],
        [["mobilenet_v2", 0, 1, 2]],
        [["mobilenet_v2", 0, 2, 3]],
    ]
    merged = merge_shards(list(reversed(shard_files)), out=tmp_path, command="hfus-bench merge ...").record
    _same_record(merged, record)
    assert (
        merged["environment"]["run"]["shards"] == 3
        and merged["environment"]["run"]["threads_per_process"] == 1
    )
    assert merged["command"].startswith("hfus-bench evaluate gradcam") and "--shard" not in merged["command"]
    assert (tmp_path / "gradcam.maps.npz").read_bytes() == (out / "gradcam.maps.npz").read_bytes()
    assert json.loads((tmp_path / "gradcam.json").read_text()) == merged


def _edit(src: Path, dst_dir: Path, fn) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    record = json.loads(src.read_text())
    fn(record)
    shutil.copy(src.parent / record["maps_file"]["path"], dst_dir / record["maps_file"]["path"])
    (dst_dir / src.name).write_text(json.dumps(record))
    return dst_dir / src.name


def test_merge_refuses_shards_that_do_not_belong_together(shard_files, tmp_path) -> None:
    with pytest.raises(HfusError, match=r"shard\(s\) 1/3 missing: a merge needs all 3 shards"):
        merge_shards([shard_files[0], shard_files[2]], out=tmp_path)
    with pytest.raises(HfusError, match="shard 0/3 given twice"):
        merge_shards([shard_files[0], shard_files[0], shard_files[1], shard_files[2]], out=tmp_path)
    other = _edit(
        shard_files[1],
        tmp_path / "other",
        lambda r: r["dataset"].update(revision="synth-v1-seed0", sha256="0" * 64),
    )
    with pytest.raises(
        HfusError, match=r"differ in the dataset \(id, revision, content hash\): revision, sha256"
    ):
        merge_shards([shard_files[0], other, shard_files[2]], out=tmp_path)
    opts = _edit(shard_files[1], tmp_path / "opts", lambda r: r["options"].update(seed=1))
    with pytest.raises(HfusError, match=r"different options \(seed\)"):
        merge_shards([shard_files[0], opts, shard_files[2]], out=tmp_path)
    meth = _edit(shard_files[1], tmp_path / "meth", lambda r: r["method"].update(sha256="f" * 64))
    with pytest.raises(HfusError, match="differ in the method"):
        merge_shards([shard_files[0], meth, shard_files[2]], out=tmp_path)
    ckpt = _edit(
        shard_files[1], tmp_path / "ckpt", lambda r: r["folds"][0]["checkpoint"].update(sha256="e" * 64)
    )
    with pytest.raises(HfusError, match="used another mobilenet_v2 fold 0 checkpoint"):
        merge_shards([shard_files[0], ckpt, shard_files[2]], out=tmp_path)
    maps = _edit(shard_files[1], tmp_path / "maps", lambda r: r["maps_file"].update(sha256="a" * 64))
    with pytest.raises(HfusError, match="has sha256"):
        merge_shards([shard_files[0], maps, shard_files[2]], out=tmp_path)
    with pytest.raises(HfusError, match="not a shard record"):
        (tmp_path / "x.json").write_text("{}")
        merge_shards([tmp_path / "x.json"], out=tmp_path)
    assert not (tmp_path / "gradcam.json").exists()


def test_cli_shard_and_merge(shard_files, tmp_path, capsys, monkeypatch) -> None:
    from hfus_xai_bench.cli import main

    assert main(["evaluate", "gradcam", "--shard", "3/3"]) == 2
    assert "--shard must be I/N with 0 <= I < N" in capsys.readouterr().err
    with monkeypatch.context() as env:  # rank 0 of a torchrun job: shards and ranks do not mix
        env.setenv("WORLD_SIZE", "2")
        env.setenv("RANK", "0")
        assert main(["evaluate", "gradcam", "--shard", "0/2"]) == 2
    assert "under torchrun the ranks already split it: use one or the other" in capsys.readouterr().err
    assert main(["merge", str(shard_files[0]), "--out", str(tmp_path)]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["merge", *map(str, shard_files), "--out", str(tmp_path), "--no-figure"]) == 0
    assert "result:" in capsys.readouterr().out and (tmp_path / "gradcam.json").is_file()


# ------------------------------------------------------------------------------------------ units


def test_shares_are_whole_batches_disjoint_and_complete() -> None:
    plan = plan_batches({("mobilenet_v2", 0): 7, ("resnet101", 0): 4}, 2)
    for count in (1, 2, 3, 5, 9):
        parts = [share(plan, i, count) for i in range(count)]
        assert sorted((b.arch, b.start) for p in parts for b in p) == sorted((b.arch, b.start) for b in plan)
        assert all(isinstance(b, Batch) for p in parts for b in p)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert share(plan, 1, 3) == [plan[1], plan[4]]
    with pytest.raises(HfusError):
        share(plan, 3, 3)


def test_shard_and_rank_parsing(monkeypatch) -> None:
    assert Shard.parse("1/3") == Shard(1, 3) and str(Shard(1, 3)) == "1/3"
    for bad in ("3/3", "1-3", "-1/3", "0/0"):
        with pytest.raises(HfusError, match="--shard must be I/N"):
            Shard.parse(bad)
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert detect() is None
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert detect() is None
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert detect() == RankContext(rank=2, world_size=4, local_rank=0)
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(HfusError, match="must be integers"):
        detect()


def test_gather_and_finish_in_a_one_rank_group(monkeypatch) -> None:
    """The rank protocol without torchrun: a gloo group of one rank (the launcher guard switched off)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for key, value in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", str(port)), ("RANK", "0")):
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setattr(distributed, "die_with_launcher", lambda: False)
    ctx = RankContext(rank=0, world_size=1, local_rank=0)
    assert gather_and_finish(ctx, "cpu", lambda: 3, lambda got: got + [4], finishing="adding") == [3, 4]

    def fails() -> int:
        raise ValueError("no data here")

    with pytest.raises(
        HfusError, match=r"^rank 0 failed: ValueError: no data here .*\(1 of 1 ranks; nothing"
    ):
        gather_and_finish(ctx, "cpu", fails, lambda got: got, finishing="adding")
    with pytest.raises(HfusError, match=r"^rank 0 failed while adding: ValueError: no data here"):
        gather_and_finish(ctx, "cpu", lambda: 3, lambda got: fails(), finishing="adding")
