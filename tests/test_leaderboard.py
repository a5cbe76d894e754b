"""leaderboard/: entries, schema, the §7.4 ranking gate, rank ranges, the §7.3 paired gains and the
deterministic Markdown render (columns from the registry); the pages and files: test_leaderboard_pages.py."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from leaderboard_fixtures import fake_record, record, s7_record, s7_scores, sample_records, shifted, strip_s7

from hfus_xai_bench.cli import main
from hfus_xai_bench.compare import compare, image_scores
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.explainers.registry import SANITY_METHODS
from hfus_xai_bench.leaderboard import (
    entry_filename,
    entry_from_result,
    load_entries,
    rank_ranges,
    render_html,
    render_markdown,
    validate_entry,
)
from hfus_xai_bench.leaderboard.tables import build_tables, column_headers, detail_headers
from hfus_xai_bench.results import FoldScores, schema

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def records() -> dict[str, dict]:
    return sample_records()


@pytest.fixture(scope="module")
def entries(records: dict[str, dict]) -> list[dict]:
    return [entry_from_result(r) for r in records.values()]


def _tables(md: str) -> list[list[str]]:
    """The markdown tables of ``md``, each as its lines."""
    blocks, current = [], []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    return blocks


def _rows(md: str, table: int | str = 0) -> list[list[str]]:
    """The body rows of the ``table``-th markdown table, or of the first whose header starts with the
    cells ``table`` names (``"method"``: the paired gains)
    (cells stripped; separator rows included)."""
    blocks = _tables(md)
    if isinstance(table, str):
        block = next(b for b in blocks if b[0].startswith(f"| {table} "))
    else:
        block = blocks[table]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in block[2:]]


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
    assert entry_filename(e) == "gradcam.folds-0-1.json"  # folds other than fold 0 alone: in the name
    assert entry_filename({**e, "options": {**e["options"], "folds": [0]}}) == "gradcam.json"
    other = entry_from_result(
        fake_record("gradcam", 2.0, 1), track="real/hfus", url="https://x.org", code="a/b.py"
    )
    assert entry_filename(other) == "gradcam.real-hfus.folds-0-1.json"
    assert other["links"]["url"] == "https://x.org" and other["links"]["code"] == "a/b.py"


def test_entry_keeps_the_per_image_values_of_every_output(
    records: dict[str, dict], entries: list[dict]
) -> None:
    """``per_image_scores`` holds what the record's rows give for every output (10 significant digits),
    NaN -> null."""
    rec = records["gradcam"]
    e = next(x for x in entries if x["method"]["name"] == "gradcam")
    part = e["per_image_scores"]["mobilenet_v2"]["1"]
    assert part["image_ids"] == [r["image_id"] for r in rec["per_image"] if r["fold"] == 1]
    assert set(part["scores"]) >= {
        "hit_rate@1",
        "confidence@1/dic",
        "road@1/combined",
        "randomisation@2/rho",
        "randomisation@2/pearson",
    }
    hr1 = [r["hr1"] for r in rec["per_image"] if r["fold"] == 1]
    assert part["scores"]["hit_rate@1"][-1] is None and hr1[-1] is None  # the failed image
    assert np.allclose(part["scores"]["hit_rate@1"][:-1], hr1[:-1], rtol=1e-9, atol=0)
    from_entry, from_record = image_scores(e), image_scores(rec)
    for arch, folds in from_record.items():
        for fold, scores in folds.items():
            assert from_entry[arch][fold].image_ids == scores.image_ids
            for key, values in scores.scores.items():
                np.testing.assert_allclose(from_entry[arch][fold].scores[key], values, rtol=1e-9, atol=1e-12)
    # the entry's means are the mean of fold means of these values
    v = [
        np.array(e["per_image_scores"]["mobilenet_v2"][f]["scores"]["road@1/combined"], float)
        for f in ("0", "1")
    ]
    assert np.mean([np.nanmean(x) for x in v]) == pytest.approx(
        e["metrics"]["road@1/combined"]["mobilenet_v2"]["mean"]
    )
    validate_entry(e)
    validate_entry(strip_s7(e))  # entries made before per_image_scores (and §7) stay valid


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
    e = copy.deepcopy(entries[0])
    e["per_image_scores"]["mobilenet_v2"]["0"]["scores"]["hit_rate@1"][0] = "1.0"
    with pytest.raises(HfusError, match=r"per_image_scores/mobilenet_v2/0/scores/hit_rate@1/0"):
        validate_entry(e)


def test_entry_schema_copies_the_result_schema() -> None:
    result, entry = schema("result"), schema("entry")
    assert entry["$defs"] == result["$defs"]
    shared = set(result["properties"]) - {"per_image"}
    assert set(entry["properties"]) == shared | {"track", "links", "per_image_scores"}
    for key in shared:
        assert entry["properties"][key] == result["properties"][key], key
    assert set(entry["required"]) == (set(result["required"]) - {"per_image"}) | {"track", "links"}
    assert entry["additionalProperties"] is False


def test_only_model_dependent_maps_are_ranked(entries: list[dict]) -> None:
    """PROTOCOL §7.4: ranked rows = randomisation@2 verdict pass; the sanity baselines (ρ = r = 1) fail
    and are listed below, marked."""
    md = render_markdown(entries)
    assert column_headers()[:9] == [
        "rank",
        "method",
        "HR1 ↑",
        "ΔHR1 vs depth_prior ↑",
        "ROAD ↑",
        "ρ rand. ↓ (ρ cross)",
        "r rand. ↓ (D)",
        "DiC ↑",
        "IiC % ↑",
    ]
    assert column_headers()[9:] == ["acc", "evaluated", "FE/img", "s/img", "device", "links", "notes"]
    rows = _rows(md)
    names = [r[1] for r in rows]
    split = next(
        i
        for i, r in enumerate(rows)
        if r[1].startswith("**not ranked — maps do not depend enough on the model")
    )
    ranked, below = rows[:split], rows[split + 1 :]
    assert [r[1].split("]")[0].strip("[") for r in ranked] == [
        "gradcam",
        "hirescam",
        "scorecam",
    ]  # sorted by HR1
    assert [r[0] for r in ranked] == ["1–2", "1–2", "3"]  # rank ranges among the ranked rows only
    assert {r[1] for r in below} == {f"*{n}* (sanity)" for n in ("depth_prior", "random", "sobel")}
    assert all(r[0] == "–" and "not ranked: maps do not depend enough on the model" in r[-1] for r in below)
    depth = next(r for r in below if "depth_prior" in r[1])
    assert depth[2].startswith("2.3")  # the prior has the best HR1 of the table and is still not ranked
    assert depth[5].startswith("1.000 [1.000, 1.000] (")  # ρ = 1 by construction, ρ_cross in parentheses
    assert depth[6] == "1.000 [1.000, 1.000] (0.00)"  # r = 1 too, no degenerate pair
    tables = build_tables(entries)
    head = column_headers(False, tables[0]["criteria"])  # with the rank columns (test_leaderboard_ranks.py)
    assert head[9:12] == ["loc. rank", "faith. rank (spread)", "sanity rank (spread)"]
    assert ranked[0][head.index("FE/img")] == "0.0"  # FE/img: these records count no model passes
    assert all(r[9:12] == ["—"] * 3 for r in below)  # unranked rows get no rank
    assert not any(n.startswith("*") for n in names[:split])  # no sanity baseline is ranked
    assert tables[0]["n_ranked"] == 3 and {r["status"] for r in tables[0]["rows"][3:]} == {"fail"}
    assert all(r["status"] != "ranked" for r in tables[0]["rows"] if r["method"] in SANITY_METHODS)


def test_every_kind_of_unranked_row_in_order(records: dict[str, dict]) -> None:
    """PROTOCOL §7.4: below the ranked rows come fail, then undetermined (with D), then a verdict over
    another K, then no §7 data, then the oracle references (never ranked, whatever their scores); v1.1
    entries are gated by randomisation@1/pass and ranked together with the v1.2 ones, noted."""
    undecided = s7_record("flatcam", 2.9, 7, degenerate=0.75)  # 3 of 4 images: all pairs degenerate
    oracle = s7_record("oracle", 2.95, 8, metadata={"reference": "oracle"})
    old = s7_record("oldcam", 1.5, 9, version=1)  # made before v1.2: randomisation@1/pass
    other_k = copy.deepcopy(s7_record("fivecopies", 2.7, 10))
    other_k["metrics"]["randomisation@2/verdict"]["mobilenet_v2"]["copies"] = 5
    blank = strip_s7(entry_from_result(s7_record("bare", 2.8, 11)))
    entries = [
        entry_from_result(r) for r in (records["gradcam"], records["random"], undecided, oracle, old, other_k)
    ] + [blank]
    table = build_tables(entries)[0]
    kinds = [(r["method"], r["status"]) for r in table["rows"]]
    assert kinds == [
        ("gradcam", "ranked"),
        ("oldcam", "ranked"),
        ("random", "fail"),
        ("flatcam", "undetermined"),
        ("fivecopies", "other_copies"),
        ("bare", "no_s7"),
        ("oracle", "reference"),
    ]
    assert [r["rank"] for r in table["rows"][:2]] == [(1, 1), (2, 2)]
    notes = {r["method"]: (r["notes"] or [""])[0] for r in table["rows"]}
    d = undecided["metrics"]["randomisation@2/pairs"]["mobilenet_v2"]["degenerate_share"]
    assert d == 9 / 11  # 9 of each fold's 11 evaluated images (the 12th failed) have 3 degenerate pairs
    assert notes["flatcam"] == f"not ranked: randomisation undecided (degenerate share D = {d:.2f})"
    assert notes["oldcam"] == "randomisation@1 (v1.1: one randomised copy)"
    assert "K = 5" in notes["fivecopies"] and notes["oracle"] == "reference (oracle): not ranked"
    md = render_markdown(entries)
    for heading in (
        "**not ranked — maps do not depend enough",
        "**not ranked — randomisation undecided",
        "**not ranked — randomisation over another number of copies",
        "**not ranked — no §7 data",
        "**references — never ranked",
    ):
        assert heading in md, heading
    old_row = next(r for r in _rows(md) if r[1] == "oldcam")
    assert old_row[5].endswith(")") and old_row[6] == "n/a"  # v1.1: ρ (ρ_cross) shown, no Pearson
    page = render_html(entries)
    for kind in ("fail", "undetermined", "other_copies", "no_s7", "reference"):
        assert f'<tbody class="unranked {kind}">' in page


def test_fe_per_image_from_the_cost_block(records: dict[str, dict]) -> None:
    """FE/img is the record's own (PROTOCOL §6, ``cost[arch]["fe_per_image"]``, written by the runner with the
    row counts); entries made before the passes were counted show "—"."""
    from hfus_xai_bench.compare import fe_per_image

    e = copy.deepcopy(entry_from_result(records["gradcam"]))
    assert fe_per_image(e, "mobilenet_v2") == 0.0  # the fake runs make no model passes
    e["cost"]["mobilenet_v2"].pop("fe_per_image")  # as an entry made before the passes were counted
    assert fe_per_image(e, "mobilenet_v2") is None
    n = e["counts"]["mobilenet_v2"]["n_images"]
    e["cost"]["mobilenet_v2"].update(
        {
            "forward_rows": 10 * n + 4,
            "backward_rows": 3 * n + 2,
            "forward_rows/repeat": 4,
            "backward_rows/repeat": 2,
            "fe_per_image": 16.0,
        }
    )
    validate_entry(e)
    assert fe_per_image(e, "mobilenet_v2") == 16.0
    row = next(r for r in _rows(render_markdown([e])) if "gradcam" in r[1])
    assert row[column_headers(False, build_tables([e])[0]["criteria"]).index("FE/img")] == "16.0"
    assert "FE/img (model passes per image, PROTOCOL §6): A 16.0; B 0.0" in _compare_text(
        e, records["hirescam"]
    )


def _compare_text(a: dict, b: dict) -> str:
    import contextlib
    import io
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        pa, pb = Path(tmp) / "a.json", Path(tmp) / "b.json"
        pa.write_text(json.dumps(a))
        pb.write_text(json.dumps(b))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["compare", str(pa), str(pb)]) == 0
    return out.getvalue()


def test_paired_gains_have_known_answers(records: dict[str, dict]) -> None:
    """A method whose HR1 is the prior's + 0.5 on every image: ΔHR1 vs depth_prior = +0.500 [+0.500, +0.500];
    the same numbers as `compare`; the prior's own cell is "—"."""
    prior_runs = [
        s7_scores("mobilenet_v2", f, 1.0, 5 + 10 * f, model_dependent=False, road=0.25) for f in (0, 1)
    ]
    prior = record("depth_prior", prior_runs)
    better = shifted(prior_runs, "hit_rate@1/hr1", 0.5)
    for run in better:
        for key in ("randomisation@2/rand2_rho", "randomisation@2/rand2_pearson"):
            run.values[key] = np.where(np.isnan(run.values[key]), np.nan, 0.0)
        run.values["road@1/road_morf_p"] = run.values["road@1/road_morf_p"] - 0.2  # ROAD combined + 0.1
    plus = record("plus", better)
    rand = records["random"]
    entries = [entry_from_result(r) for r in (prior, plus, rand)]
    md = render_markdown(entries)
    main, detail = _rows(md, 0), _rows(md, "method")
    row = next(r for r in main if r[1] == "plus")
    assert row[0] == "1" and row[3] == "+0.500 [+0.500, +0.500]"
    assert next(r for r in main if "depth_prior" in r[1])[3] == "—"
    head = detail_headers()
    assert head[:5] == [
        "method",
        "ΔHR1 vs depth_prior ↑",
        "ΔHR1 vs random ↑",
        "ΔROAD vs depth_prior ↑",
        "ΔROAD vs random ↑",
    ]
    drow = next(r for r in detail if r[0] == "plus")
    assert drow[1] == "+0.500 [+0.500, +0.500]" and drow[3] == "+0.100 [+0.100, +0.100]"
    c = compare(plus, rand)
    d = {x.key: x for x in c.differences["mobilenet_v2"]}
    lo, hi = d["hit_rate@1"].ci95
    assert drow[2] == f"{d['hit_rate@1'].diff:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    lo, hi = d["road@1/combined"].ci95
    assert drow[4] == f"{d['road@1/combined'].diff:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    assert (
        d["hit_rate@1"].n == 22 and d["hit_rate@1"].n_excluded == 2
    )  # the failed image of each fold is left out
    # paired, not a difference of two independent CIs: narrower than either method's own CI
    own = plus["metrics"]["hit_rate@1"]["mobilenet_v2"]["ci95"]
    assert hi - lo < own[1] - own[0] or d["hit_rate@1"].ci95[1] - d["hit_rate@1"].ci95[0] < own[1] - own[0]


def test_old_entries_render_without_s7(records: dict[str, dict], entries: list[dict]) -> None:
    """Entries made before §7: no crash, listed below the ranked rows as "no §7 data", gains n/a."""
    old = [strip_s7(e) for e in entries if e["method"]["name"] in ("scorecam", "sobel")]
    md = render_markdown([e for e in entries if e["method"]["name"] not in ("scorecam", "sobel")] + old)
    rows = _rows(md)
    i = next(i for i, r in enumerate(rows) if r[1].startswith("**not ranked — no §7 data"))
    assert i == len(rows) - 3 and rows[i - 1][-1].startswith(
        "not ranked: maps do not depend enough on the model"
    )
    for r in rows[i + 1 :]:
        assert r[0] == "–" and r[3] == "n/a" and r[4] == "n/a" and r[5] == "n/a"
        assert r[-1].startswith("not ranked: no §7 data")
    only_old = render_markdown(old)
    assert "**not ranked — no §7 data" in only_old and "| 1 |" not in only_old
    assert render_html(old).count("<svg") == 2


def test_committed_entries_are_never_ranked_without_s7() -> None:
    """The committed entries (however old): every row without a pass (randomisation@2 verdict, or
    randomisation@1/pass before v1.2) is unranked."""
    for table in build_tables(load_entries(REPO / "leaderboard" / "entries")):
        for row in table["rows"]:
            assert (row["rank"] is not None) == (row["status"] == "ranked"), row["method"]
            if row["sanity"]:
                assert row["rank"] is None, row["method"]


def test_separate_tables_for_another_checkpoint(records: dict[str, dict]) -> None:
    """Rows of one table share the checkpoints (so they can be paired); another checkpoint gets its own
    table."""
    other = copy.deepcopy(records["scorecam"])
    for fold in other["checkpoints"]["mobilenet_v2"].values():
        fold["sha256"] = "f" * 64
    tables = build_tables([entry_from_result(records["gradcam"]), entry_from_result(other)])
    assert len(tables) == 2 and tables[0]["title"] != tables[1]["title"]
    assert any("checkpoint ffffffff" in t["title"] for t in tables)
    assert len({t["anchor"] for t in tables}) == 2


def test_the_default_architecture_s_table_comes_first(records: dict[str, dict]) -> None:
    """Another architecture's table (GoogLeNet sorts before MobileNetV2 by name) follows the default one's."""
    other = json.loads(json.dumps(records["gradcam"]).replace('"mobilenet_v2"', '"googlenet"'))
    tables = build_tables([entry_from_result(other), entry_from_result(records["gradcam"])])
    assert [t["arch"] for t in tables] == ["mobilenet_v2", "googlenet"]


def test_a_checkpoint_registered_but_not_published_is_marked(
    records: dict[str, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table whose checkpoint is registered by sha256 only (a card with ``published: no``) says so in its
    title; the shipped checkpoint's table does not."""
    from hfus_xai_bench.models import checkpoints as C

    other = copy.deepcopy(records["scorecam"])
    for fold in other["checkpoints"]["mobilenet_v2"].values():
        fold["sha256"] = "f" * 64
    card = {"name": "big", "arch": "resnet101", "dataset": "hfus-synth", "fold": 0, "file": "big.safetensors"}
    monkeypatch.setitem(
        C.REGISTRY, "big", C.Checkpoint.from_card({**card, "sha256": "F" * 64, "published": "no"}, "package")
    )
    tables = build_tables([entry_from_result(records["gradcam"]), entry_from_result(other)])
    marked = [t["title"].endswith(" · checkpoint not published") for t in tables]
    assert marked == [t["checkpoints"][0][1] == "f" * 64 for t in tables] and sum(marked) == 1


def test_a_new_registry_column_reaches_the_second_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Columns come from the registry: a metric with a label that is not a §7.4 column is shown in the second
    table of each section (after the four paired gains), with its mean and CI."""
    from hfus_xai_bench.metrics.registry import METRICS, Metric, Output, Value

    toy = Metric(
        id="mean_map@1",
        category="sanity",
        needs="maps",
        function=lambda inputs, config: {},
        values=(Value("mean_map"),),
        required=False,
        description="A toy metric (a test of the registry). " * 3,
        outputs=(Output("", "higher", (0.0, 1.0), "mean map value", "mean_map", label="mean map"),),
    )
    monkeypatch.setitem(METRICS, "mean_map@1", toy)
    runs = [s7_scores("mobilenet_v2", f, 2.0, 1 + 10 * f) for f in (0, 1)]
    for run in runs:
        run.values["mean_map@1/mean_map"] = np.full(len(run.image_ids), 0.25)
    md = render_markdown([entry_from_result(record("gradcam", runs))])
    assert detail_headers()[-1] == "mean map ↑" and "mean map" not in " ".join(column_headers())
    assert _rows(md, "method")[0][-1] == "0.250 [0.250, 0.250]"


def test_render_is_deterministic_and_marks_sanity_and_identical_rows(entries: list[dict]) -> None:
    md = render_markdown(entries)
    shuffled = entries[:]
    random.Random(0).shuffle(shuffled)
    assert render_markdown(shuffled) == md
    assert render_html(shuffled) == render_html(entries)
    assert (
        "hit_rate@1" in md
        and "## hfus-synth · MobileNetV2 · folds 0,1 · all test images · rev synth-v2-seed0" in md
    )
    rows = _rows(md)
    hires = next(r for r in rows if "hirescam" in r[1])
    assert "identical to gradcam (expected: PROTOCOL §5.1)" in hires[-1]
    assert hires[0] == "1–2"  # identical CIs: a rank range, not a rank
    assert any(r[1] == "*random* (sanity)" for r in rows) and any(r[1] == "*sobel* (sanity)" for r in rows)
    assert "[BibTeX](#cite-gradcam)" in md and '<a id="cite-gradcam"></a>' in md
    assert "[code](../hfus_xai_bench/explainers/cam.py)" in md
    assert "0.0100" in md  # s/img from the cost section
    assert "2025" not in md  # no timestamps


def _s9_metrics() -> dict:
    """Stand-ins for §9's registry entries (the s9 helper's metrics), with the record keys tables read."""
    from hfus_xai_bench.metrics.registry import Metric, Output, Value

    def metric(mid: str, outputs: list[tuple[str, str, str]]) -> Metric:
        return Metric(
            id=mid,
            category="localisation",
            needs="maps",
            function=lambda inputs, config: {},
            values=tuple(Value(f"{mid.split('@')[0]}_{n}") for n, _, _ in outputs),
            outputs=tuple(
                Output(n, d, (-1.0, 1.0), f"{mid} {n}", f"{mid.split('@')[0]}_{n}", label=label)
                for n, d, label in outputs
            ),
            required=False,
            description=f"A stand-in for {mid} (a test of the leaderboard columns, not the metric). " * 2,
        )

    return {
        "evidence@1": metric(
            "evidence@1",
            [
                ("hit", "higher", "ev. hit"),
                ("mass", "higher", "ev. mass"),
                ("hit_gain", "higher", "ev. hit gain"),
                ("mass_gain", "higher", "ev. mass gain"),
            ],
        ),
        "class_sensitivity@1": metric("class_sensitivity@1", [("rho", "lower", "class ρ")]),
        "counterfactual@1": metric(
            "counterfactual@1", [("effect", "none", "CF effect"), ("flip", "none", "CF flip")]
        ),
    }


def test_evidence_track_columns_and_gains_vs_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """PROTOCOL §7.3-7.4 on a track with class evidence (§9): evidence hit / mass with their gains over the
    copies and class_sensitivity@1 after IiC, counterfactual@1 once after accuracy; the paired gains add
    evidence hit and mass and the `input` reference; tables without evidence keep the plain columns."""
    from hfus_xai_bench.metrics.registry import METRICS

    for mid, m in _s9_metrics().items():
        monkeypatch.setitem(METRICS, mid, m)

    def with_s9(hit: float) -> Callable[[FoldScores], None]:
        def edit(run: FoldScores) -> None:
            n = len(run.image_ids)
            for m in _s9_metrics().values():
                for v in m.values:
                    run.values[m.key(v)] = np.full(n, hit if v.name == "evidence_hit" else 0.25)

        return edit

    grad = s7_record("gradcam", 2.0, 1, edit=with_s9(0.75))
    inp = s7_record("input", 1.0, 2, model_dependent=False, edit=with_s9(0.5))
    entries = [entry_from_result(r) for r in (grad, inp)]
    table = build_tables(entries)[0]
    assert table["evidence"] and [r["sanity"] for r in table["rows"]] == [False, True]
    head = column_headers(evidence=True)
    assert head[head.index("IiC % ↑") + 1 : head.index("acc")] == [
        "ev. hit ↑",
        "ev. hit gain ↑",
        "ev. mass ↑",
        "ev. mass gain ↑",
        "class ρ ↓",
    ]
    assert head[head.index("acc") + 1 : head.index("evaluated")] == ["CF effect", "CF flip"]
    md = render_markdown(entries)
    row = next(r for r in _rows(md) if "gradcam" in r[1])
    assert row[head.index("ev. hit ↑")] == "0.750 [0.750, 0.750]"
    detail = detail_headers(evidence=True)
    assert (
        "Δev. hit vs input ↑" in detail and "ΔHR1 vs input ↑" in detail and "Δev. mass vs random ↑" in detail
    )
    drow = next(r for r in _rows(md, "method") if "gradcam" in r[0])
    assert drow[detail.index("Δev. hit vs input ↑")] == "+0.250 [+0.250, +0.250]"
    assert "ev. hit" not in " ".join(column_headers()) and "input" not in " ".join(detail_headers())
    assert render_html(entries).count("CF effect") == 1  # once, next to accuracy (not in the second table)
