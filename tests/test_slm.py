"""Golden tests for slm@1 (PROTOCOL §1.1) on hand-drawn columns."""

import numpy as np
import pytest

from hfus_xai_bench.data.slm import SLM_VERSION, skin_layer_map

S = 224


def col(values: dict[tuple[int, int], int]) -> np.ndarray:
    """Expected column: {(start, stop): level}, 0 elsewhere."""
    c = np.zeros(S, dtype=np.uint8)
    for (a, b), v in values.items():
        c[a:b] = v
    return c


def blank() -> np.ndarray:
    return np.zeros((S, S), dtype=bool)


def test_version():
    assert SLM_VERSION == "slm@1"


def test_surface_and_three_bands():
    epi = blank()
    epi[60:70, 50] = True  # rows 60..69
    out = skin_layer_map(epi, None, None)
    assert out.dtype == np.uint8 and out.shape == (S, S)
    expected = col({(44, 60): 32, (60, 70): 255, (70, 106): 128, (106, 142): 64, (142, 178): 32})
    np.testing.assert_array_equal(out[:, 50], expected)
    # every other column is empty → 0
    assert out[:, :50].max() == 0 and out[:, 51:].max() == 0
    assert set(np.unique(out)) == {0, 32, 64, 128, 255}


def test_union_of_structures_and_0_255_input():
    epi = np.zeros((S, S), np.uint8)
    sleb = np.zeros((S, S), np.uint8)
    epi[40:50, 10] = 255
    sleb[50:80, 10] = 255
    out = skin_layer_map(epi, sleb, None)
    expected = col({(24, 40): 32, (40, 80): 255, (80, 116): 128, (116, 152): 64, (152, 188): 32})
    np.testing.assert_array_equal(out[:, 10], expected)


def test_bands_clipped_at_bottom():
    epi = blank()
    epi[150:170, 100] = True
    out = skin_layer_map(epi)
    expected = col({(134, 150): 32, (150, 170): 255, (170, 206): 128, (206, 224): 64})
    np.testing.assert_array_equal(out[:, 100], expected)
    epi = blank()
    epi[200:224, 100] = True  # tissue reaches the bottom: no band below at all
    out = skin_layer_map(epi)
    np.testing.assert_array_equal(out[:, 100], col({(184, 200): 32, (200, 224): 255}))


def test_band_above_clipped_at_top():
    epi = blank()
    epi[5:20, 30] = True
    out = skin_layer_map(epi)
    expected = col({(0, 5): 32, (5, 20): 255, (20, 56): 128, (56, 92): 64, (92, 128): 32})
    np.testing.assert_array_equal(out[:, 30], expected)


def test_margin_columns_are_zero():
    epi = blank()
    epi[60:70, :] = True
    out = skin_layer_map(epi)
    assert out[:, :5].max() == 0 and out[:, 223].max() == 0
    assert (out[60:70, 5:223] == 255).all()
    assert (out[70:106, 5:223] == 128).all()


def test_tumour_deeper_than_epidermis_gap_kept():
    epi = blank()
    tumor = blank()
    epi[40:50, 80] = True
    tumor[60:100, 80] = True  # gap rows 50..59 stay 0: the union is kept as is
    out = skin_layer_map(epi, None, tumor)
    expected = col(
        {(24, 40): 32, (40, 50): 255, (60, 100): 255, (100, 136): 128, (136, 172): 64, (172, 208): 32}
    )
    np.testing.assert_array_equal(out[:, 80], expected)


def test_lower_band_never_overwrites_and_empty_column():
    epi = blank()
    epi[100:110, 60] = True
    epi[100:110, 61] = True
    out = skin_layer_map(epi)
    np.testing.assert_array_equal(out[:, 60], out[:, 61])
    np.testing.assert_array_equal(out[:, 62], np.zeros(S, np.uint8))
    assert (out[100:110, 60] == 255).all()


def test_batched_equals_per_image():
    rng = np.random.default_rng(0)
    n = 4
    epi = np.zeros((n, S, S), bool)
    sleb = np.zeros((n, S, S), bool)
    tumor = np.zeros((n, S, S), bool)
    for i in range(n):
        top = rng.integers(20, 80, size=S)
        thick = rng.integers(5, 15, size=S)
        rows = np.arange(S)[:, None]
        epi[i] = (rows >= top) & (rows < top + thick)
        if i % 2:
            sleb[i] = (rows >= top + thick) & (rows < top + thick + 20)
        if i == 3:
            tumor[i, 90:140, 60:120] = True
        epi[i, :, 150:160] = False  # some empty columns
    batched = skin_layer_map(epi, sleb, tumor)
    assert batched.shape == (n, S, S)
    for i in range(n):
        np.testing.assert_array_equal(batched[i], skin_layer_map(epi[i], sleb[i], tumor[i]))


def test_errors():
    with pytest.raises(ValueError):
        skin_layer_map(None, None, None)
    with pytest.raises(ValueError):
        skin_layer_map(blank(), np.zeros((10, 10), bool))
