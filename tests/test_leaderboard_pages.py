"""leaderboard/ pages and files: the self-contained HTML, the Markdown-to-HTML converter, the plots' label
placement, write/load/render round trips, the committed pages and entries, and `hfus-bench leaderboard`."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from leaderboard_fixtures import fake_record, sample_records

from hfus_xai_bench.cli import main
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.jsonio import dumps_compact_lists
from hfus_xai_bench.leaderboard import (
    entry_from_result,
    load_entries,
    render,
    render_html,
    render_markdown,
    stale_files,
    write_entry,
)
from hfus_xai_bench.leaderboard.mdtext import inline_html, markdown_to_html, safe_url
from hfus_xai_bench.leaderboard.plots import (
    Box,
    label_size,
    place_labels,
    scatter_layout,
    svg_forest,
    svg_scatter,
)
from hfus_xai_bench.leaderboard.tables import build_tables

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def entries() -> list[dict]:
    return [entry_from_result(r) for r in sample_records().values()]


def test_html_is_self_contained(entries: list[dict]) -> None:
    page = render_html(entries)
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 2 and "<script>" in page
    assert " src=" not in page and "<link" not in page and "@import" not in page
    assert page.count('class="sortable') == 2 and 'tr class="sanity"' in page  # main, paired gains
    assert '<tbody class="ranked">' in page and '<tbody class="unranked fail">' in page
    assert "identical to gradcam (expected: PROTOCOL §5.1)" in page
    # the rules are Markdown rendered as HTML: no literal backticks or double asterisks left
    rules = page[page.index("</h1>") : page.index("<h2")]
    assert "`" not in rules and "**" not in rules
    assert (
        "<code>randomisation@2/verdict</code>" in rules
        and "<strong>Ranking (PROTOCOL §7.4).</strong>" in rules
    )
    assert "<em>maps do not depend enough on the model</em>" in rules


def test_markdown_to_html_known_inputs() -> None:
    assert (
        inline_html("`a<b` and **bold** and *em*")
        == "<code>a&lt;b</code> and <strong>bold</strong> and <em>em</em>"
    )
    assert inline_html("`**not bold**`") == "<code>**not bold**</code>"
    assert (
        inline_html('<script>alert(1)</script> & "q"')
        == "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;"
    )
    assert inline_html("2 * 3 * 4, a*b*c") == "2 * 3 * 4, a*b*c"  # not emphasis
    assert (
        inline_html("[x *y*](https://a.org/?q=1&r=2)")
        == '<a href="https://a.org/?q=1&amp;r=2">x <em>y</em></a>'
    )
    assert inline_html("[code](../hfus_xai_bench/x.py) [c](#cite-x)") == (
        '<a href="../hfus_xai_bench/x.py">code</a> <a href="#cite-x">c</a>'
    )
    assert inline_html("[x](javascript:alert)") == "[x](javascript:alert)"  # unsafe scheme: text
    assert inline_html('[x](" onclick="y)') == "[x](&quot; onclick=&quot;y)"
    assert not safe_url("data:text/html,x") and safe_url("index.html") and safe_url("mailto:a@b.org")
    assert inline_html("CI [l, u] among") == "CI [l, u] among"
    assert markdown_to_html("one\ntwo **b**\n\n- item *a*\n  more\n- `c`\n\nend") == (
        "<p>one two <strong>b</strong></p>\n"
        "<ul><li>item <em>a</em> more</li><li><code>c</code></li></ul>\n<p>end</p>"
    )
    assert markdown_to_html("") == ""


def _assert_no_overlap(boxes: list[Box], markers: list[tuple[float, float]], bounds: Box) -> None:
    for i, a in enumerate(boxes):
        assert a.inside(bounds), a
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)
        for px, py in markers:
            assert not a.overlaps(Box(px - 4, py - 4, px + 4, py + 4)), (a, px, py)


def test_scatter_labels_do_not_overlap_on_the_committed_entries() -> None:
    tables = build_tables(load_entries(REPO / "leaderboard" / "entries"))
    assert tables
    for table in tables:
        lay = scatter_layout(table)
        assert (
            len(lay.boxes)
            == len(lay.names)
            == sum(1 for r in table["rows"] if r["scores"]["confidence@1/dic"][0] is not None)
        )
        _assert_no_overlap(list(lay.boxes), list(lay.points), lay.bounds)
        assert lay.bounds.x1 <= lay.width and lay.bounds.y1 <= lay.height
        svg = svg_scatter(table)
        assert svg.count('class="label"') == len(lay.names)
        for name, box in zip(lay.names, lay.boxes, strict=True):  # each label is drawn inside its box
            assert f'x="{box.x0 + 1:.1f}"' in svg and f">{name}</text>" in svg
            assert label_size(name, 10)[0] == pytest.approx(box.x1 - box.x0)


def test_label_placement_on_crowded_points() -> None:
    """Twelve labels on (almost) one spot, and a spot in a corner: all placed, none overlapping, same
    every time."""
    names = [
        "gradcam",
        "hirescam",
        "gradcampp",
        "ablationcam",
        "eigengradcam",
        "ig",
        "gradientshap",
        "saliency",
        "random",
        "center",
        "depth_prior",
        "sobel",
    ]
    bounds = Box(44, 24, 448, 284)
    for points in ([(250.0 + 0.3 * i, 270.0 - 0.2 * i) for i in range(12)], [(440.0, 280.0)] * 12):
        boxes = place_labels(points, names, bounds)
        _assert_no_overlap(boxes, points, bounds)
        assert place_labels(points, names, bounds) == boxes
    with pytest.raises(HfusError):
        place_labels([(0.0, 0.0)], [], bounds)


def test_forest_plot_has_hr1_and_road(entries: list[dict]) -> None:
    table = build_tables(entries)[0]
    svg = svg_forest(table)
    assert "HR1 (hit_rate@1)" in svg and "ROAD combined (road@1)" in svg
    n = len(table["rows"])
    assert svg.count("<circle") == 2 * n  # a dot per method in each panel
    assert svg.count('fill="#fff"') == 2 * (n - table["n_ranked"])  # unranked: open circles
    assert 'stroke-dasharray="4 3"' in svg  # the line between ranked and unranked rows


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
    # a fold-0 entry of the same method sits next to the two-fold one (another table)
    fold0 = copy.deepcopy(next(e for e in entries if e["method"]["name"] == "gradcam"))
    fold0["options"]["folds"] = [0]
    write_entry(fold0, folder)
    assert sorted(p.name for p in folder.glob("gradcam*")) == ["gradcam.folds-0-1.json", "gradcam.json"]
    assert len(load_entries(folder)) == len(entries) + 1
    # an entry of another architecture sits next to them (its rows go to that architecture's table) ...
    other_arch = copy.deepcopy(fold0)
    other_arch["options"]["models"] = ["googlenet"]
    assert write_entry(other_arch, folder).name == "gradcam.models-googlenet.json"
    assert len(load_entries(folder)) == len(entries) + 2
    # ... one holding a row another file holds is refused when added, and when placed by hand
    both = copy.deepcopy(fold0)
    both["options"]["models"] = ["googlenet", "resnet101"]
    with pytest.raises(HfusError, match=r"gradcam.models-googlenet.json already holds 'gradcam' on "):
        write_entry(both, folder)
    assert not (folder / "gradcam.models-googlenet-resnet101.json").exists()
    (folder / "gradcam.models-googlenet-resnet101.json").write_text(json.dumps(both))
    with pytest.raises(
        HfusError, match=r"a second entry for 'gradcam' on 'hfus-synth', GoogLeNet, folds \[0\]"
    ):
        load_entries(folder)
    (folder / "gradcam.models-googlenet-resnet101.json").unlink()
    (folder / "gradcam.models-googlenet.json").unlink()
    (folder / "gradcam.json").unlink()
    (folder / "gradcam.folds-0-1.json").rename(folder / "grad.json")
    with pytest.raises(HfusError, match="must be named gradcam.folds-0-1.json"):
        load_entries(folder)
    (folder / "grad.json").write_text("{")
    with pytest.raises(HfusError, match="not valid JSON"):
        load_entries(folder)


def test_committed_pages_match_a_fresh_render() -> None:
    entries_dir, out = REPO / "leaderboard" / "entries", REPO / "leaderboard"
    for e in load_entries(entries_dir):  # committed entries come from real runs: the command is recorded
        assert e["command"] and e["command"].startswith("hfus-bench "), e["method"]["name"]
    assert stale_files(entries_dir, out) == [], "run `hfus-bench leaderboard render` and commit the result"


def test_committed_entries_are_written_as_add_writes_them() -> None:
    """``leaderboard add`` writes an entry with :func:`dumps_compact_lists` (a list of per-image values on
    one line); a committed entry in another form was edited by hand or written by an older version."""
    for path in sorted((REPO / "leaderboard" / "entries").glob("*.json")):
        text = path.read_text(encoding="utf-8")
        assert text == dumps_compact_lists(json.loads(text)) + "\n", (
            f"{path.name}: rewrite it with write_entry"
        )


def _cli(argv: list[str]) -> int:
    return main(argv)


def test_cli_add_missing_citation_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rec_path = tmp_path / "scorecam.json"
    rec_path.write_text(json.dumps(fake_record("scorecam", 1.2, 2)))
    missing = tmp_path / "nope.bib"
    argv = ["leaderboard", "add", str(rec_path), "--entries", str(tmp_path / "e"), "--citation", str(missing)]
    assert _cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hfus-bench: error: citation file not found: {missing}") and err.count("\n") == 1
    assert not (tmp_path / "e").exists()


def test_cli_add_render_check(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rec = fake_record("scorecam", 1.2, 2)
    rec_path = tmp_path / "scorecam.json"
    rec_path.write_text(json.dumps(rec))
    bib = tmp_path / "x.bib"
    bib.write_text("@misc{x, title={X}}")
    entries_dir = tmp_path / "entries"
    assert (
        _cli(["leaderboard", "add", str(rec_path), "--entries", str(entries_dir), "--citation", str(bib)])
        == 0
    )
    assert (
        json.loads((entries_dir / "scorecam.folds-0-1.json").read_text())["links"]["citation"]
        == "@misc{x, title={X}}"
    )
    assert capsys.readouterr().out.startswith(f"wrote {entries_dir / 'scorecam.folds-0-1.json'}")
    assert (
        _cli(["leaderboard", "add", str(rec_path), "--entries", str(entries_dir)]) == 0
    )  # the same row again
    assert capsys.readouterr().out == (
        f"replaced {entries_dir / 'scorecam.folds-0-1.json'} (the previous entry of that row)\n"
    )
    assert (
        _cli(["leaderboard", "render", "--entries", str(entries_dir), "--out", str(tmp_path), "--check"]) == 1
    )
    assert _cli(["leaderboard", "render", "--entries", str(entries_dir), "--out", str(tmp_path)]) == 0
    assert (
        _cli(["leaderboard", "render", "--entries", str(entries_dir), "--out", str(tmp_path), "--check"]) == 0
    )
    assert _cli(["leaderboard", "render", "--entries", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    rec["command"] = None
    rec_path.write_text(json.dumps(rec))
    assert _cli(["leaderboard", "add", str(rec_path), "--entries", str(entries_dir)]) == 2
    assert "up to date" in capsys.readouterr().out
    assert _cli(["leaderboard"]) == 2  # a missing sub-command prints the help and exits 2
    assert "usage: hfus-bench leaderboard" in capsys.readouterr().err
