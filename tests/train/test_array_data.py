"""Pretraining on in-memory images (ArrayDataModule) through the same run machinery, then export."""

import json

import numpy as np


def test_pretrain_arrays_then_export(tmp_path, striped):
    import domainssl
    from domainssl.train.array_data import ArrayDataModule
    from domainssl.transfer.export_run import export_run
    from domainssl.train.pretraining import run_pretraining
    from domainssl.train.recipe import apply_overrides, load_recipe
    from pathlib import Path

    images, _ = striped
    dm = ArrayDataModule(images, ["ch0", "ch1"], batch_size=8, seed=0, name="striped")
    assert dm.stats["channel_names"] == ["ch0", "ch1"] and abs(dm.stats["mean"][0] - 100) < 5
    recipe_path = Path(__file__).resolve().parents[2] / "recipes" / "microscopy_simclr.yaml"
    recipe = apply_overrides(load_recipe(recipe_path), [
        "--views.global.size", "16", "--model.arch", "test_resnet", "--method.proj_hidden_dim", "32",
        "--method.proj_dim", "16", "--method.warmup_steps", "0", "--trainer.max_steps", "3",
        "--trainer.accelerator", "cpu", "--pictures.views", "true", "--pictures.reconstructions", "false"])
    facts = run_pretraining(recipe, tmp_path / "run", datamodule=dm)
    assert facts["final"]["global_step"] == 3 and facts["data"]["n_images"] == 24
    assert (tmp_path / "run" / "pictures" / "views.png").is_file()
    enc = domainssl.load_encoder(export_run(tmp_path / "run", tmp_path / "enc"))
    assert enc.card["channel_names"] == ["ch0", "ch1"] and enc.card["units"] == ["px", "px"]
    assert json.loads((tmp_path / "enc" / "encoder.json").read_text())["data"]["formats"] == {"array": 24}


def test_epochs_give_new_views(striped):
    from domainssl.data.dataset import EPOCH_STRIDE
    from domainssl.train.array_data import ArraySamples
    from domainssl.transforms import build_views

    images, _ = striped
    gen = build_views("fluorescence", "two_view", 2, channel_names=["ch0", "ch1"], overrides={"global": {"size": 8}})
    ds = ArraySamples(images, ["ch0", "ch1"], [1.0, 1.0], ["px", "px"], transform=gen)
    a, b = ds[0]["views"][0], ds[EPOCH_STRIDE]["views"][0]
    assert a.shape == (2, 8, 8) and not np.allclose(np.asarray(a), np.asarray(b))


def test_cpu_training_leaves_cores_to_data_workers(monkeypatch):
    import os

    import torch

    from domainssl.train.pretraining import _cpu_threads

    before = torch.get_num_threads()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    try:
        torch.set_num_threads(2)
        _cpu_threads({"accelerator": "cpu"}, num_workers=1)
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        _cpu_threads({"accelerator": "cpu"}, num_workers=0)
        assert torch.get_num_threads() == 2
        _cpu_threads({"accelerator": "cpu"}, num_workers=4)
        assert torch.get_num_threads() == 1  # never below one thread
    finally:
        torch.set_num_threads(before)
