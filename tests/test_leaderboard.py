"""leaderboard/: entries, schema, rank ranges and the deterministic MD/HTML render (columns from the registry)."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
from helpers import fake_scores

from hfus_xai_bench.cli import main
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.explainers.loader import Method
from hfus_xai_bench.leaderboard import (
    entry_filename,
    entry_from_result,
    load_entries,
    rank_ranges,
    render,
    render_html,
    render_markdown,
    stale_files,
    validate_entry,
    write_entry,
)
from hfus_xai_bench.results import build_result, schema

REPO = Path(__file__).resolve().parent.parent
ENV = {"hfus_xai_bench": "0.1.0", "torch": "x", "device": "cpu", "device_name": "test-cpu"}


def fake_record(name: str, level: float, seed: int, archs: tuple[str, ...] = ("mobilenet_v2",), runs=None) -> dict:
    method = Method(name=name, source="builtin", kind="map", factory=lambda m, c: None, metadata={"name": name})
    runs = runs or [fake_scores(a, f, level, seed + 10 * f) for a in archs for f in (0, 1)]
    options = {"models": list(archs), "folds": [0, 1], "limit": None, "target": "pred", "sign": "pos",
               "confidence": "logit", "batch_size": 16, "seed": 0, "precision": "fp32", "device": "cpu"}
    dataset = {"id": "hfus-synth", "revision": "synth-v1-seed0", "sha256": "a" * 64, "n_images": 631}
    result = build_result(method, runs, options=options, dataset=dataset, environment=dict(ENV),
                          command=f"hfus-bench evaluate {name} --folds 0,1")
    result.record["timestamp"] = "2025-01-01T00:00:00+00:00"
    return result.record


@pytest.fixture(scope="module")
def entries() -> list[dict]:
    recs = [fake_record("gradcam", 2.0, 1), fake_record("scorecam", 1.2, 2), fake_record("random", 0.2, 3),
            fake_record("sobel", 0.9, 4)]
    # HiRes-CAM on MobileNetV2 = Grad-CAM (PROTOCOL §5.1): same per-image values
    hires = fake_record("hirescam", 2.0, 1)
    recs.append(hires)
    return [entry_from_result(r) for r in recs]


def test_rank_range_rule_on_hand_made_cis() -> None:
    cis = [(2.0, 2.5), (1.8, 2.1), (1.0, 1.5), (None, None), (2.6, 2.7)]
    assert rank_ranges(cis) == [(2, 3), (2, 3), (4, 4), None, (1, 1)]
    assert rank_ranges([(1.0, 2.0), (1.0, 2.0)]) == [(1, 2), (1, 2)]  # equal CIs tie completely
    assert rank_ranges([(1.0, 2.0), (2.0, 3.0)]) == [(1, 2), (1, 2)]  # touching bounds overlap
    assert rank_ranges([]) == []


def test_entry_from_result_drops_per_image_and_adds_track_and_links(entries: list[dict]) -> None:
    e = next(x for x in entries if x["method"]["name"] == "gradcam")
    assert "per_image" not in e and e["track"] == "hfus-synth"
    assert e["links"]["url"] == "https://arxiv.org/abs/1610.02391"
    assert e["links"]["citation"].startswith("@inproceedings{selvaraju2017gradcam")
    assert e["links"]["code"] == "hfus_xai_bench/explainers/cam.py"
    assert e["command"] == "hfus-bench evaluate gradcam --folds 0,1"
    assert isinstance(e["metrics"]["hit_rate@1"]["mobilenet_v2"]["mean"], float)
    assert entry_filename(e) == "gradcam.json"
    other = entry_from_result(fake_record("gradcam", 2.0, 1), track="real/hfus", url="https://x.org", code="a/b.py")
    assert entry_filename(other) == "gradcam.real-hfus.json"
    assert other["links"]["url"] == "https://x.org" and other["links"]["code"] == "a/b.py"


def test_schema_errors_name_the_field(entries: list[dict]) -> None:
    e = copy.deepcopy(entries[0])
    e["metrics"]["hit_rate@1"]["mobilenet_v2"]["mean"] = "2.0"  # numbers are numbers
    with pytest.raises(HfusError, match=r"metrics/hit_rate@1/mobilenet_v2/mean"):
        validate_entry(e)
    e = copy.deepcopy(entries[0])
    e["leaderboard_rank"] = 1
    with pytest.raises(HfusError, match="leaderboard_rank"):
        validate_entry(e)
    e = copy.deepcopy(entries[0])
    del e["links"]
    with pytest.raises(HfusError, match="'links' is a required property"):
        validate_entry(e)
    e = copy.deepcopy(entries[0])
    e["links"]["paper"] = "x"
    with pytest.raises(HfusError, match=r"links.*paper"):
        validate_entry(e)
    e = copy.deepcopy(entries[0])
    e["per_image"] = []
    with pytest.raises(HfusError, match="per_image"):
        validate_entry(e)


def test_entry_schema_copies_the_result_schema() -> None:
    result, entry = schema("result"), schema("entry")
    assert entry["$defs"] == result["$defs"]
    shared = set(result["properties"]) - {"per_image"}
    assert set(entry["properties"]) == shared | {"track", "links"}
    for key in shared:
        assert entry["properties"][key] == result["properties"][key], key
    assert set(entry["required"]) == (set(result["required"]) - {"per_image"}) | {"track", "links"}
    assert entry["additionalProperties"] is False


def test_render_is_deterministic_and_marks_sanity_and_identical_rows(entries: list[dict]) -> None:
    md = render_markdown(entries)
    shuffled = entries[:]
    random.Random(0).shuffle(shuffled)
    assert render_markdown(shuffled) == md
    assert render_html(shuffled) == render_html(entries)
    assert "hit_rate@1" in md and "## hfus-synth · MobileNetV2 · folds 0,1 · all test images · rev synth-v1-seed0" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and "[" in line and "rank" not in line]
    names = [r.split("|")[2] for r in rows]
    # sorted by HR1 mean; gradcam / hirescam first (identical), sanity rows visible and marked
    assert "gradcam" in names[0] or "hirescam" in names[0]
    assert any("*random* (sanity)" in n for n in names) and any("*sobel* (sanity)" in n for n in names)
    hires = next(r for r in rows if "hirescam" in r.split("|")[2])
    assert "identical to gradcam (expected: PROTOCOL §5.1)" in hires
    assert hires.split("|")[1].strip() == "1–2"  # identical CIs: a rank range, not a rank
    assert "[BibTeX](#cite-gradcam)" in md and '<a id="cite-gradcam"></a>' in md
    assert "[code](../hfus_xai_bench/explainers/cam.py)" in md
    assert "0.0100" in md  # s/img from the cost section
    assert "2025" not in md  # no timestamps


def test_html_is_self_contained(entries: list[dict]) -> None:
    page = render_html(entries)
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 2 and "<script>" in page
    assert " src=" not in page and "<link" not in page and "@import" not in page
    assert 'class="sortable"' in page and 'tr class="sanity"' in page
    assert "identical to gradcam (expected: PROTOCOL §5.1)" in page


def test_write_load_render_roundtrip(tmp_path: Path, entries: list[dict]) -> None:
    folder = tmp_path / "entries"
    for e in entries:
        write_entry(e, folder)
    loaded = load_entries(folder)
    assert [e["method"]["name"] for e in loaded] == sorted(e["method"]["name"] for e in entries)
    assert loaded == sorted(entries, key=lambda e: e["method"]["name"])
    md_path, html_path = render(folder, tmp_path)
    assert md_path.read_text() == render_markdown(entries)
    assert stale_files(folder, tmp_path) == []
    md_path.write_text(md_path.read_text() + "edited\n")
    assert stale_files(folder, tmp_path) == [str(md_path)]
    (folder / "gradcam.json").rename(folder / "grad.json")
    with pytest.raises(HfusError, match="must be named gradcam.json"):
        load_entries(folder)
    (folder / "grad.json").write_text("{")
    with pytest.raises(HfusError, match="not valid JSON"):
        load_entries(folder)


def test_committed_pages_match_a_fresh_render() -> None:
    entries_dir, out = REPO / "leaderboard" / "entries", REPO / "leaderboard"
    for e in load_entries(entries_dir):  # committed entries come from real runs: the command is recorded
        assert e["command"] and e["command"].startswith("hfus-bench "), e["method"]["name"]
    assert stale_files(entries_dir, out) == [], "run `hfus-bench leaderboard render` and commit the result"


def _cli(argv: list[str]) -> int:
    return main(argv)


def test_cli_add_render_check(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rec = fake_record("scorecam", 1.2, 2)
    rec_path = tmp_path / "scorecam.json"
    rec_path.write_text(json.dumps(rec))
    bib = tmp_path / "x.bib"
    bib.write_text("@misc{x, title={X}}")
    entries_dir = tmp_path / "entries"
    assert _cli(["leaderboard", "add", str(rec_path), "--entries", str(entries_dir), "--citation", str(bib)]) == 0
    assert json.loads((entries_dir / "scorecam.json").read_text())["links"]["citation"] == "@misc{x, title={X}}"
    assert _cli(["leaderboard", "render", "--entries", str(entries_dir), "--out", str(tmp_path), "--check"]) == 1
    assert _cli(["leaderboard", "render", "--entries", str(entries_dir), "--out", str(tmp_path)]) == 0
    assert _cli(["leaderboard", "render", "--entries", str(entries_dir), "--out", str(tmp_path), "--check"]) == 0
    assert _cli(["leaderboard", "render", "--entries", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    rec["command"] = None
    rec_path.write_text(json.dumps(rec))
    assert _cli(["leaderboard", "add", str(rec_path), "--entries", str(entries_dir)]) == 2
    assert "up to date" in capsys.readouterr().out
    assert _cli(["leaderboard"]) == 2  # a missing sub-command prints the help and exits 2
    assert "usage: hfus-bench leaderboard" in capsys.readouterr().err
