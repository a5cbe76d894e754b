"""The portable bilinear resize equals Pillow's BILINEAR on the sizes the benchmark imports."""

import numpy as np
import pytest
from PIL import Image

from hfus_xai_bench.data.resample import resize_bilinear, resize_mask
from hfus_xai_bench.errors import HfusError


def _pil(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize(size, Image.BILINEAR))


@pytest.mark.parametrize(
    "shape", [(389, 517, 3), (1555, 2067, 3), (48, 64, 3), (389, 517), (300, 400), (100, 224, 3)]
)
def test_matches_pillow_on_landscape_frames(shape):
    rng = np.random.default_rng(sum(shape))
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(resize_bilinear(a), _pil(a, (224, 224)))


@pytest.mark.parametrize(
    ("shape", "size"),
    [((10, 1), (1, 20)), ((1, 10), (13, 1)), ((6, 6), (9, 9)), ((6, 6), (4, 4)), ((40, 30), (20, 90))],
)
def test_matches_pillow_up_and_down(shape, size):
    a = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(resize_bilinear(a, size), _pil(a, size))


def test_mask_rule_and_identity():
    m = np.zeros((389, 517), np.uint8)
    m[100:140, 50:400] = 255
    out = resize_mask(m)
    assert set(np.unique(out)) == {0, 255}
    np.testing.assert_array_equal(out, np.where(_pil(m, (224, 224)) > 127, 255, 0))
    same = np.arange(224 * 224, dtype=np.int64).reshape(224, 224).astype(np.uint8)
    np.testing.assert_array_equal(resize_bilinear(same), same)


def test_errors():
    with pytest.raises(HfusError, match="uint8"):
        resize_bilinear(np.zeros((4, 4), np.float32))
    with pytest.raises(HfusError, match="positive"):
        resize_bilinear(np.zeros((4, 4), np.uint8), (0, 3))
