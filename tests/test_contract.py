"""The harness side of the explainer contract: a method's exit() is its failure, and why a map is empty."""

from __future__ import annotations

import json
import pickle
import sys

import pytest
import torch

from hfus_xai_bench.errors import HarnessError
from hfus_xai_bench.explainers.contract import (
    FAIL_EMPTY,
    NEGATIVE_MAP,
    EmptyMap,
    describe_reason,
    run_method,
    to_m255,
)
from hfus_xai_bench.metrics import normalize_attribution

CPU = torch.device("cpu")


def test_exit_in_a_method_fails_its_images_and_the_run_goes_on():
    images, targets = torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.long)
    outputs = run_method(lambda x, t: sys.exit(0), images, targets)
    assert outputs == [(None, "exception: SystemExit: the method called exit(0)")] * 2


def test_an_hfus_error_of_a_helper_the_method_calls_fails_that_image_only():
    """PROTOCOL §3: an exception counts per image, an HfusError raised by a package helper included; only
    the harness's own error (HarnessError) stops the run."""

    def nan_on_first(images, targets):
        a = torch.ones(len(images), 3, 8, 8)
        if bool((targets == 0).any()):
            a[0, 0, 0, 0] = float("nan")
        return normalize_attribution(a)

    images, targets = torch.zeros(2, 3, 8, 8), torch.tensor([0, 1])
    outputs = run_method(nan_on_first, images, targets)
    assert outputs[0][0] is None and outputs[0][1].startswith("exception: HfusError: ")
    assert "NaN or Inf" in outputs[0][1] and outputs[1][1] is None and outputs[1][0].shape == (1, 8, 8)

    def harness_fails(images, targets):
        raise HarnessError("internal: a model pass outside any cost stage (PROTOCOL §6); please report it")

    with pytest.raises(HarnessError, match="outside any cost stage"):
        run_method(harness_fails, images, targets)


def test_ctrl_c_in_a_method_is_not_caught():
    def interrupted(images, targets):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_method(interrupted, torch.zeros(1, 3, 8, 8), torch.zeros(1, dtype=torch.long))


def test_all_negative_maps_of_kind_map_say_they_were_clipped():
    maps = torch.stack([-torch.rand(8, 8) - 0.1, torch.zeros(8, 8), torch.rand(8, 8) + 0.1])
    m255, reasons = to_m255([(maps, None)], 3, "map", "pos", CPU)
    assert reasons == [FAIL_EMPTY, FAIL_EMPTY, None] and not m255[:2].any()
    assert isinstance(reasons[0], EmptyMap) and not isinstance(reasons[1], EmptyMap)
    assert describe_reason(reasons[0]) == f"empty_map ({NEGATIVE_MAP})"
    assert describe_reason(reasons[1]) == "empty_map"
    # the reason code stays empty_map wherever it is compared, counted, recorded or pickled
    again = pickle.loads(pickle.dumps(reasons[0]))
    assert again == "empty_map" and again.why == NEGATIVE_MAP and str(again) == "empty_map"
    assert {reasons[0]: 1} == {"empty_map": 1} and json.dumps(reasons[0]) == '"empty_map"'


def test_negative_attributions_are_not_called_clipped():
    m255, reasons = to_m255([(-torch.rand(1, 3, 8, 8) - 0.1, None)], 1, "attribution", "pos", CPU)
    assert reasons == [FAIL_EMPTY] and not isinstance(reasons[0], EmptyMap)


def test_per_image_outputs_fail_alone_and_keep_their_places():
    """Outputs retried image by image: each failure reason lands on its own image, good maps on theirs."""
    good = torch.zeros(1, 8, 8)
    good[0, 2, 3] = 1.0
    nan = good.clone()
    nan[0, 0, 0] = float("nan")
    outputs = [
        (None, "exception: ValueError: x"),
        ("not a map", None),
        (torch.ones(2, 8, 8), None),
        (nan, None),
        (-torch.ones(1, 8, 8), None),
        (good, None),
    ]
    m255, reasons = to_m255(outputs, 6, "map", "pos", CPU)
    assert reasons[0] == "exception: ValueError: x"
    assert reasons[1].startswith("wrong_type: ") and reasons[2].startswith("wrong_shape: ")
    assert reasons[3] == "non_finite" and reasons[5] is None
    assert reasons[4] == FAIL_EMPTY and reasons[4].why == NEGATIVE_MAP
    assert not m255[:3].any() and not m255[4].any()
    # NaN pixels are zeroed, the rest of that map is kept; both good maps peak where their 1 is upsampled to
    assert torch.equal(m255[3], m255[5]) and m255[5].max() == 255
    assert m255[5].flatten().argmax().item() // 224 in range(56, 112)
