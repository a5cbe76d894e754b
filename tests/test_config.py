"""config.py: one RunConfig per run, validated once, serialised into the record and rebuilt from it."""

from __future__ import annotations

import pytest

from hfus_xai_bench.config import RunConfig, parse_known, parse_list
from hfus_xai_bench.constants import ARCH_NAMES
from hfus_xai_bench.errors import HfusError


def test_defaults_and_parsing() -> None:
    c = RunConfig()
    assert (c.models, c.folds, c.limit, c.device, c.precision) == (
        ("mobilenet_v2",),
        (0,),
        None,
        "auto",
        "fp32",
    )
    c = RunConfig.build(models="all", folds="0,3", limit=8)
    assert c.models == ARCH_NAMES and c.folds == (0, 3) and c.limit == 8
    assert RunConfig(models=["MobileNet", "resnet"]).models == ("mobilenet_v2", "resnet101")
    assert parse_list(" a, b ,", ["x"]) == ["a", "b"] and parse_list("all", [1, 2]) == ["1", "2"]


def test_parse_known_names_every_unknown_item() -> None:
    assert parse_known("all", ARCH_NAMES, "architecture") == list(ARCH_NAMES)
    assert parse_known("googlenet, resnet101", ARCH_NAMES, "architecture") == ["googlenet", "resnet101"]
    assert parse_known("", ARCH_NAMES, "architecture") == []
    with pytest.raises(HfusError, match=r"^unknown architecture: vgg16, alexnet \(known: densenet201, "):
        parse_known("vgg16,googlenet,alexnet", sorted(ARCH_NAMES), "architecture")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"models": "vgg16"}, "unknown architecture 'vgg16'"),
        ({"folds": "5"}, r"folds must be in 0..4"),
        ({"folds": "x"}, "--folds must be fold numbers"),
        ({"folds": ""}, "nothing to evaluate"),
        ({"limit": 0}, "--limit must be at least 1"),
        ({"batch_size": 0}, "--batch-size must be at least 1"),
        ({"target": "argmax"}, "--target must be one of pred, label"),
        ({"sign": "both"}, "--sign must be one of"),
        ({"confidence": "z"}, "--confidence must be one of logit, prob"),
        ({"precision": "fp8"}, "--precision must be one of fp32"),
        ({"models": "resnet101,resnet"}, "must not repeat"),
    ],
)
def test_bad_values_are_one_clear_error(options: dict, message: str) -> None:
    with pytest.raises(HfusError, match=message):
        RunConfig.build(**options)


def test_options_round_trip_and_cli_args() -> None:
    import torch

    c = RunConfig.build(
        models="resnet101,googlenet",
        folds="1",
        limit=3,
        confidence="prob",
        seed=7,
        dataset="owner/name",
        revision="abc",
    )
    options = c.to_options(torch.device("cpu"))
    assert options == {
        "models": ["resnet101", "googlenet"],
        "folds": [1],
        "limit": 3,
        "target": "pred",
        "sign": "pos",
        "confidence": "prob",
        "batch_size": 16,
        "seed": 7,
        "precision": "fp32",
        "device": "cpu",
        "randomisations": 3,
    }
    record = {"options": options, "dataset": {"id": "owner/name", "revision": "abc"}}
    assert RunConfig.from_record(record) == c.replace(batch_size=16)
    assert RunConfig.from_record(record, limit=2, device="cpu").limit == 2
    assert c.cli_args() == [
        "--models",
        "resnet101,googlenet",
        "--folds",
        "1",
        "--limit",
        "3",
        "--confidence",
        "prob",
        "--seed",
        "7",
        "--dataset",
        "owner/name",
        "--revision",
        "abc",
    ]
    with pytest.raises(HfusError, match="unknown run option"):
        RunConfig.build(fold=1)
