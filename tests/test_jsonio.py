"""jsonio: the one JSON-number helper and the one load-or-fail helper."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.jsonio import dumps_compact_lists, from_json_numbers, json_number, json_numbers, load_json


def test_numbers_round_trip_with_nan_as_null() -> None:
    assert json_number(np.float32(0.5)) == 0.5 and json_number(float("nan")) is None
    assert json_number(np.inf) is None and json_number(3) == 3.0
    a = np.array([[0.1, np.nan], [1 / 3, -np.inf]])
    lists = json_numbers(a)
    assert lists == [[0.1, None], [1 / 3, None]]
    back = from_json_numbers(json.loads(json.dumps(lists)))
    # float64 survives JSON exactly (repr round trip); inf comes back as NaN, like every null
    np.testing.assert_array_equal(back, np.where(np.isfinite(a), a, np.nan))
    assert json_numbers(np.float64(2.0)) == 2.0 and np.isnan(from_json_numbers(None))


def test_load_json_or_fail_with_one_message(tmp_path) -> None:
    good = tmp_path / "a.json"
    good.write_text('{"x": [1, null]}')
    assert load_json(good) == {"x": [1, None]}
    with pytest.raises(HfusError, match=r"file not found: .*missing.json \(expected a shard record\)"):
        load_json(tmp_path / "missing.json", "shard record")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(HfusError, match="is not valid JSON"):
        load_json(bad, "result file")


def test_compact_lists_one_key_per_line_and_each_scalar_list_on_one_line() -> None:
    value = {"b": [1.5, None, "x"], "a": {"ids": ["i1", "i2"], "rows": [{"z": [], "y": {}}], "é": True}}
    text = dumps_compact_lists(value)
    assert json.loads(text) == value
    assert text == (
        '{\n "a": {\n  "ids": ["i1", "i2"],\n  "rows": [\n   {\n    "y": {},\n    "z": []\n   }\n  ],\n'
        '  "é": true\n },\n "b": [1.5, null, "x"]\n}'
    )
    assert dumps_compact_lists([1 / 3]) == "[0.3333333333333333]"  # repr: float64 exactly
    with pytest.raises(ValueError):
        dumps_compact_lists({"x": [float("nan")]})
