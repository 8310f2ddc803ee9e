"""The label-efficiency benchmark's per-set settings build valid recipes and views, and its goal
arithmetic is right (the benchmark itself is too long for a test)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

from domainssl.train.recipe import validate_recipe
from domainssl.transforms.plan import resolve_config

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "label_efficiency.py"


@pytest.fixture(scope="module")
def le():
    spec = importlib.util.spec_from_file_location("label_efficiency", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(**kw):
    base = dict(size=None, recipe=None, arch="test_resnet", steps=None, accelerator="cpu", precision=None, set=None)
    return argparse.Namespace(**{**base, **kw})


def _stats(n):
    names = [f"c{i}" for i in range(n)]
    return {"channel_names": names, "mean": [0.5] * n, "std": [0.2] * n, "p01": [0.0] * n, "p99": [1.0] * n}


@pytest.mark.parametrize("name", ["pneumoniamnist", "coffee", "jurkat"])
def test_each_set_builds_a_valid_recipe_and_views(le, name):
    recipe = validate_recipe(le.build_recipe(name, _args()), where=name)
    views = recipe["views"]
    config = resolve_config(views["preset"], 2, _stats(3), views)  # unknown view keys would raise
    assert config.normalise.mode == "stats_range"  # absolute intensity survives in every set
    assert recipe["trainer"]["max_steps"] == le.DATASETS[name].get("steps", 600)
    assert views["global"]["size"] == le.DATASETS[name]["size"]


def test_per_set_choices_reach_the_recipe(le):
    coffee = le.build_recipe("coffee", _args())
    assert coffee["views"]["global"]["size"] == 64 and coffee["trainer"]["max_steps"] == 1000
    jurkat = le.build_recipe("jurkat", _args())
    config = resolve_config("fluorescence", 2, _stats(3), jurkat["views"])
    assert jurkat["method"]["temperature"] == 0.5
    view = config.global_view
    assert view.brightness == 0.0 and tuple(view.gamma) == (1.0, 1.0) and tuple(view.scale) == (0.8, 1.0)
    # the preset's per-channel contrast jitter stays: without any jitter SimCLR took a shortcut
    assert view.contrast > 0 and view.per_channel


def test_command_line_wins_over_the_set_defaults(le):
    recipe = le.build_recipe("jurkat", _args(steps=50, set=[["method.temperature", "0.1"]]))
    assert recipe["trainer"]["max_steps"] == 50 and recipe["method"]["warmup_steps"] == 5
    assert recipe["method"]["temperature"] == 0.1
    assert le.dataset_steps("coffee", _args()) == 1000 and le.dataset_steps("jurkat", _args()) == 600


def test_another_recipe_does_not_get_the_sets_method_settings(le):
    recipe = le.build_recipe("jurkat", _args(recipe="sentinel2_mae.yaml"))
    assert recipe["method"]["name"] == "mae" and "temperature" not in recipe["method"]


def test_goals_arithmetic(le):
    def row(enc, k, acc):
        return {"encoder": enc, "shots": k, "accuracy_mean": acc, "balanced_accuracy_mean": acc - 1}

    rows = [row("pretrained", 10, 73.0), row("random_init", 10, 62.0), row("supervised_scratch", 10, 68.5),
            row("raw_pixels", 10, 64.0), row("pretrained", 50, 81.0), row("pretrained", "all", 90.0)]
    g = le.goals(rows)["accuracy_mean"]
    assert g["margin_over_best_baseline_k10"] == pytest.approx(4.5)
    assert g["margin_over_random_init_k10"] == pytest.approx(11.0)
    assert g["k50_over_all"] == pytest.approx(0.9)
    assert not g["goal_best_baseline_plus_5"] and g["goal_random_init_plus_10"] and g["goal_k50_90pct_of_all"]
