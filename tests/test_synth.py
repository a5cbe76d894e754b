"""The synthetic track generator (data/synth.py): plan, anatomy, masks, determinism, archive safety."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hfus_xai_bench.constants import CLASSES
from hfus_xai_bench.data import synth as S
from hfus_xai_bench.data import synth_ops
from hfus_xai_bench.data.synth_archive import generate_archive
from hfus_xai_bench.errors import HfusError

SMALL = (160, 120)  # (W, H)
STEM = re.compile(r"^(\d{4}-\d{2}-\d{2}_\d+)_(\d+)$")


def _tree_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "arch"
    return generate_archive(out, n=10, seed=3, size=SMALL, progress=False, workers=1)


# ---------------------------------------------------------------- plan


def test_default_counts_are_the_placeholder_mix():
    assert sum(S.CLASS_PROPORTIONS.values()) == 631
    assert S.class_counts(631) == S.CLASS_PROPORTIONS
    plan = S.plan_archive(631, 0)
    assert Counter(it.label for it in plan) == Counter(S.CLASS_PROPORTIONS)
    assert S.class_counts(8) == {"AD": 2, "CG": 2, "PS": 2, "ST": 2}
    assert S.class_counts(1) == {"AD": 0, "CG": 1, "PS": 0, "ST": 0}
    assert sum(S.class_counts(127).values()) == 127


def test_plan_stems_groups_and_order():
    plan = S.plan_archive(631, 0)
    assert [it.index for it in plan] == list(range(631))
    assert len({it.stem for it in plan}) == 631
    groups: dict[str, list] = {}
    for it in plan:
        m = STEM.match(it.stem)
        assert m and m.group(1) == it.group and int(m.group(2)) == it.frame
        groups.setdefault(it.group, []).append(it)
    assert len(groups) == len({it.group_index for it in plan})
    for items in groups.values():  # a session: one class, frames 1..k, k <= 5
        assert len({it.label for it in items}) == 1
        assert sorted(it.frame for it in items) == list(range(1, len(items) + 1))
        assert len(items) <= S.MAX_FRAMES_PER_GROUP
    sizes = Counter(len(v) for v in groups.values())
    assert set(sizes) == {1, 2, 3, 4, 5}
    # ordered by class, then stem
    assert [CLASSES.index(it.label) for it in plan] == sorted(CLASSES.index(it.label) for it in plan)
    # deterministic; another seed gives other sessions. Golden: pins the plan of version 1.
    assert S.plan_archive(631, 0) == plan
    assert [it.stem for it in S.plan_archive(631, 1)] != [it.stem for it in plan]
    assert plan[0].stem == "2017-03-01_22_1" and plan[0].group_index == 23


# ---------------------------------------------------------------- single images


@pytest.mark.parametrize("label", CLASSES)
def test_image_and_masks_per_class(label):
    rgb, masks = S.generate_image(np.random.SeedSequence([7, CLASSES.index(label)]), label, size=SMALL)
    assert rgb.shape == (SMALL[1], SMALL[0], 3) and rgb.dtype == np.uint8
    expected = {
        "AD": {"epidermis", "sleb"},
        "CG": {"epidermis"},
        "PS": {"epidermis", "sleb"},
        "ST": {"epidermis", "tumor"},
    }
    assert set(masks) == expected[label]
    for m in masks.values():
        assert m.shape == rgb.shape[:2] and m.dtype == np.uint8
        assert set(np.unique(m).tolist()) == {0, 255}
    # same generator state -> same frame; green palette: R == B, and R, B ~ 0 where G < 100
    rgb2, masks2 = S.generate_image(np.random.SeedSequence([7, CLASSES.index(label)]), label, size=SMALL)
    assert np.array_equal(rgb, rgb2) and all(np.array_equal(masks[k], masks2[k]) for k in masks)
    bw = int(round(synth_ops.SCALE_BAR_FRAC * SMALL[0]))
    body = rgb[:-5, bw:]
    assert np.array_equal(body[..., 0], body[..., 2])
    assert body[..., 0][body[..., 1] < 100].max() <= 2


def test_ad_sleb_absent_in_about_ten_percent_of_sessions():
    """Version 2 (version 3 always paints a SLEB segment: its AD evidence)."""
    absent = [S.sample_group_params(np.random.default_rng(i), "AD", "2")["sleb"] == 0 for i in range(600)]
    assert 0.06 <= np.mean(absent) <= 0.14
    assert all(S.sample_group_params(np.random.default_rng(i), "CG", "2")["sleb"] == 0 for i in range(50))


def _rows(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column: has-any, first row, last row of a 0/255 mask."""
    m = mask > 0
    has = m.any(0)
    first = np.argmax(m, 0)
    last = m.shape[0] - 1 - np.argmax(m[::-1], 0)
    return has, first, last


@pytest.mark.parametrize("seed", range(4))
def test_anatomy_sanity(seed):
    """Version 2's anatomy (version 3's moving anatomy and local evidence: tests/test_synth_v3.py)."""
    size = (200, 150)
    for label in CLASSES:
        rgb, masks = S.generate_image(
            np.random.SeedSequence([seed, 100 + CLASSES.index(label)]), label, size=size, version="2"
        )
        g = rgb[..., 1].astype(float)
        has_e, top_e, bot_e = _rows(masks["epidermis"])
        bw = int(round(synth_ops.SCALE_BAR_FRAC * size[0]))
        assert not has_e[:bw].any() and has_e[bw:].all()  # the scale bar hides the tissue
        cols = np.flatnonzero(has_e)
        # the epidermis is one contiguous band per column
        assert np.array_equal((masks["epidermis"] > 0).sum(0)[cols], (bot_e - top_e + 1)[cols])
        # gel between the membrane arc and the skin surface is dark, the entry echo bright
        gel = np.zeros_like(g, dtype=bool)
        for c in cols:
            gel[int(0.15 * size[1]) : max(int(0.15 * size[1]), top_e[c] - 3), c] = True
        assert gel.sum() > 50 and g[gel].mean() < 25
        assert g[masks["epidermis"] > 0].mean() > 150
        # the surface sits at about 20-40 % of the height
        assert 0.18 < np.median(top_e[cols]) / size[1] < 0.42
        if "sleb" in masks:
            has_s, top_s, bot_s = _rows(masks["sleb"])
            assert np.array_equal(has_s, has_e)
            assert (top_s[cols] == bot_e[cols] + 1).all()  # directly under the epidermis
            below = np.zeros_like(g, dtype=bool)
            for c in cols:
                below[bot_s[c] + 1 : bot_s[c] + 1 + 8, c] = True
            assert (
                g[masks["sleb"] > 0].mean() < 0.9 * g[below].mean()
            )  # hypo-echoic band (typically < 0.6: below)
        if "tumor" in masks:
            has_t, top_t, _ = _rows(masks["tumor"])
            tc = np.flatnonzero(has_t)
            assert len(tc) > 10
            assert (top_t[tc] == bot_e[tc] + 1).all()  # the lesion touches the epidermis
            assert not ((masks["tumor"] > 0) & (masks["epidermis"] > 0)).any()


def test_class_evidence_dermis_brightness():
    """Version 2: CG dermis is brighter than AD / PS dermis (the text-book difference; v3 removes this
    global signal on purpose, tests/test_synth_v3.py)."""
    means = {}
    for label in ("CG", "AD", "PS"):
        vals = []
        for i in range(6):
            rgb, masks = S.generate_image(
                np.random.SeedSequence([11, i, CLASSES.index(label)]), label, size=(200, 150), version="2"
            )
            low = masks.get("sleb", masks["epidermis"])
            _, _, bot = _rows(low)
            band = np.zeros(rgb.shape[:2], dtype=bool)
            for c in range(10, 200):
                band[bot[c] + 1 : bot[c] + 15, c] = True
            vals.append(rgb[..., 1][band].mean())
        means[label] = np.mean(vals)
    assert means["CG"] > 1.2 * means["AD"] and means["CG"] > 1.2 * means["PS"]


def test_group_params_shared_and_checked():
    gp = S.sample_group_params(np.random.default_rng(0), "PS")
    a, _ = S.generate_image(np.random.default_rng(1), "PS", size=SMALL, group_params=gp)
    b, _ = S.generate_image(np.random.default_rng(2), "PS", size=SMALL, group_params=gp)
    assert not np.array_equal(a, b)
    with pytest.raises(HfusError, match="group_params"):
        S.generate_image(np.random.default_rng(1), "AD", size=SMALL, group_params=gp)


def test_input_errors():
    with pytest.raises(HfusError, match="unknown class"):
        S.generate_image(0, "XX")
    with pytest.raises(HfusError, match="size"):
        S.generate_image(0, "AD", size=(10, 10))
    with pytest.raises(HfusError, match="size"):
        S.generate_image(0, "AD", size="big")
    with pytest.raises(HfusError, match="n must"):
        S.plan_archive(0)
    with pytest.raises(HfusError, match="seed"):
        S.plan_archive(5, -1)


def test_sleb_is_hypoechoic_on_average():
    """Median over 24 AD/PS frames: the SLEB is < 0.6 × as bright as the 8 rows of dermis below it."""
    ratios = []
    for seed in range(12):
        for label in ("AD", "PS"):
            rgb, masks = S.generate_image(np.random.SeedSequence([seed, 7]), label, size=(200, 150))
            if "sleb" not in masks:
                continue
            g, sleb = rgb[..., 1].astype(float), masks["sleb"] > 0
            bottom = sleb.shape[0] - 1 - np.argmax(sleb[::-1], 0)
            below = np.zeros_like(sleb)
            for c in np.flatnonzero(sleb.any(0)):
                below[bottom[c] + 1 : bottom[c] + 9, c] = True
            ratios.append(g[sleb].mean() / g[below].mean())
    assert len(ratios) >= 20 and np.median(ratios) < 0.6


def _digest(version: str) -> str:
    rgb, masks = S.render_item(S.plan_archive(12, 0)[11], 0, (128, 96), version=version)
    return hashlib.sha256(rgb.tobytes() + b"".join(masks[k].tobytes() for k in sorted(masks))).hexdigest()[
        :16
    ]


def test_golden_pixels_version_2():
    """Pins the bytes of version 2 (portable: the same on every machine; v3: tests/test_synth_v3.py)."""
    assert _digest("2") == "b28785bd2506b8cf"


def test_version_1_still_renders_and_differs():
    """v1 stays loadable by name (its bytes depend on numpy's SIMD kernels, so they are not pinned here)."""
    assert _digest("1") != _digest("2")
    with pytest.raises(HfusError, match="unknown hfus-synth generator version"):
        S.render_item(S.plan_archive(12, 0)[0], 0, (128, 96), version="4")


# ---------------------------------------------------------------- archive


def test_archive_layout_and_info(archive):
    info = json.loads((archive / synth_ops.INFO_NAME).read_text())
    assert info["generator"] == "hfus-synth" and info["version"] == S.SYNTH_VERSION and info["complete"]
    assert info["seed"] == 3 and info["n"] == 10 and info["size"] == list(SMALL)
    assert info["class_counts"] == S.class_counts(10)
    plan = S.plan_archive(10, 3)
    for it in plan:
        img = Image.open(archive / it.label / f"{it.stem}.png")
        assert img.mode == "RGB" and img.size == SMALL
        rgb, masks = S.render_item(it, 3, SMALL)
        assert np.array_equal(np.asarray(img), rgb)  # the PNG round-trips the rendered frame
        found = {p.name for p in (archive / it.label / "masks").glob(f"{it.stem}_*.png")}
        extra = {f"{it.stem}_evidence.png"} if S.SYNTH_VERSION == "3" else set()
        assert found == {f"{it.stem}_{k}.png" for k in masks} | extra
        for k, m in masks.items():
            mi = Image.open(archive / it.label / "masks" / f"{it.stem}_{k}.png")
            assert mi.mode == "L" and np.array_equal(np.asarray(mi), m)
    hashes = _tree_hashes(archive)
    listed = {f["path"]: f["sha256"] for f in info["files"]}
    assert listed == {k: v for k, v in hashes.items() if k != synth_ops.INFO_NAME}
    n_png = sum(1 for k in hashes if k.endswith(".png") and "/masks/" not in k and "/twins/" not in k)
    assert n_png == 10


def test_archive_deterministic_across_workers_and_seeds(archive, tmp_path):
    again = generate_archive(tmp_path / "w2", n=10, seed=3, size=SMALL, progress=False, workers=2)
    assert _tree_hashes(again) == _tree_hashes(archive)
    other = generate_archive(tmp_path / "s4", n=10, seed=4, size=SMALL, progress=False, workers=2)
    h_other, h_ref = _tree_hashes(other), _tree_hashes(archive)
    shared = set(h_other) & set(h_ref)
    assert not any(h_other[k] == h_ref[k] for k in shared if k.endswith(".png") and "/masks/" not in k)
    # same settings: allowed to overwrite (and the result is the same)
    generate_archive(again, n=10, seed=3, size=SMALL, progress=False, workers=1)
    assert _tree_hashes(again) == h_ref


def test_archive_refuses_foreign_or_different(tmp_path, archive):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(HfusError, match="not empty"):
        generate_archive(foreign, n=4, size=SMALL, progress=False, workers=1)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    with pytest.raises(HfusError, match="other settings"):
        generate_archive(archive, n=10, seed=4, size=SMALL, progress=False, workers=1)
    with pytest.raises(HfusError, match="other settings"):
        generate_archive(archive, n=11, seed=3, size=SMALL, progress=False, workers=1)
    a_file = tmp_path / "file.png"
    a_file.write_bytes(b"x")
    with pytest.raises(HfusError, match="is a file"):
        generate_archive(a_file, n=4, size=SMALL, progress=False, workers=1)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / synth_ops.INFO_NAME).write_text("{not json")
    with pytest.raises(HfusError, match="not a readable"):
        generate_archive(bad, n=4, size=SMALL, progress=False, workers=1)
    with pytest.raises(HfusError, match="workers"):
        generate_archive(tmp_path / "new", n=4, size=SMALL, progress=False, workers=0)
