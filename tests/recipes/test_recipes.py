"""Every recipe in recipes/ runs end to end through the real `domainssl pretrain` and `export`
commands on CPU, shrunk by command-line overrides to a tiny encoder, patch and step count."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from domainssl.cli import main

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TINY_VIT = ["--model.embed_dim", "48", "--model.depth", "1", "--model.num_heads", "2", "--model.patch_size", "8"]
TINY_MAE = ["--method.decoder_dim", "32", "--method.decoder_depth", "1", "--method.decoder_heads", "2"]
TINY_DINO = ["--method.out_dim", "64", "--method.hidden_dim", "32", "--method.bottleneck_dim", "16",
             "--method.warmup_teacher_temp_steps", "0", "--method.freeze_last_layer_steps", "0"]
TINY_HEAD = ["--method.proj_hidden_dim", "32", "--method.proj_dim", "16"]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """The generated demo archive (few tiles) plus a folder of grayscale X-ray-like PNGs."""
    from PIL import Image

    from domainssl.data.synthetic import make_demo_archive

    root = tmp_path_factory.mktemp("archive")
    info = make_demo_archive(root, seed=0, n_unlabeled=8, n_train_per_class=1, n_test_per_class=1)
    xray = root / "xray"
    xray.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8), mode="L").save(xray / f"cxr{i}.png")
    return {"tiles": info["tiles"], "ct": str(root / "archive/medical/ct_head"),
            "mr": str(root / "archive/medical/brain_t1.nii.gz"),
            "cells": str(root / "archive/microscopy/cells.ome.zarr"), "xray": str(xray)}


CASES = {
    "ct_mae3d": ("ct", ["--data.patch_size", "[16,16,16]", "--data.patch_unit", "px", "--data.target_shape", "null",
                        "--data.background", "null", "--data.patches_per_image", "4", "--views.global.size", "16",
                        "--model.arch", "vit3d_tiny", *TINY_VIT, *TINY_MAE]),
    "mr_dino3d": ("mr", ["--data.patch_size", "[16,16,16]", "--data.patch_unit", "px", "--data.target_shape", "null",
                         "--data.background", "null", "--data.patches_per_image", "4", "--views.global.size", "16",
                         "--views.local.size", "8", "--views.n_local", "2", "--model.arch", "vit3d_tiny",
                         *TINY_VIT, *TINY_DINO]),
    "sentinel2_mae": ("tiles", ["--data.channels", "null", "--data.patch_size", "[16,16]",
                                "--data.patches_per_image", "1", "--views.global.size", "16",
                                "--model.arch", "vit2d_tiny", *TINY_VIT, "--model.channel_groups", "[[0,1],[2,3]]",
                                *TINY_MAE]),
    "multispectral_mocov3": ("tiles", ["--data.patch_size", "[16,16]", "--data.patches_per_image", "1",
                                       "--views.global.size", "16", "--model.arch", "test_vit", *TINY_HEAD,
                                       "--method.pred_hidden_dim", "32"]),
    "multispectral_simclr": ("tiles", ["--data.patch_size", "[16,16]", "--data.patches_per_image", "1",
                                       "--views.global.size", "16", "--model.arch", "test_resnet", *TINY_HEAD]),
    "microscopy_dino": ("cells", ["--data.patch_size", "[1,16,16]", "--data.background", "null",
                                  "--data.patches_per_image", "4", "--views.global.size", "16",
                                  "--views.local.size", "8", "--views.n_local", "2", "--model.arch", "vit2d_tiny",
                                  *TINY_VIT, *TINY_DINO]),
    "microscopy_simclr": ("cells", ["--data.patch_size", "[1,16,16]", "--data.patches_per_image", "4",
                                    "--views.global.size", "16", "--model.arch", "test_resnet", *TINY_HEAD]),
    "xray_simclr": ("xray", ["--data.patch_size", "[16,16]", "--views.global.size", "16", "--model.arch", "test_resnet",
                             *TINY_HEAD]),
}


def test_every_recipe_has_a_tiny_test():
    assert sorted(p.stem for p in RECIPES.glob("*.yaml") if p.stem != "demo") == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_recipe_runs_end_to_end(name, archive, tmp_path):
    import torch

    import domainssl

    data_key, overrides = CASES[name]
    recipe = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
    assert recipe["data"]["root"] is None  # runnable as is once --data.root is given
    run = tmp_path / "run"
    rc = main(["pretrain", "--config", str(RECIPES / f"{name}.yaml"), "--run-dir", str(run),
               "--data.root", archive[data_key], "--data.batch_size", "4", "--data.num_workers", "0",
               "--data.stats_patches", "8", "--trainer.max_steps", "2", "--trainer.accelerator", "cpu",
               "--method.warmup_steps", "0", "--log.every_n_steps", "1", "--pictures.views", "false",
               "--pictures.reconstructions", "false", *overrides])
    assert rc == 0
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert rc == 0 and main(["export", str(run), "--out", str(tmp_path / "enc")]) == 0
    enc = domainssl.load_encoder(tmp_path / "enc")
    card = enc.card
    assert card["method"]["name"] == recipe["method"]["name"].replace("moco", "mocov3").replace("mocov3v3", "mocov3")
    x = torch.zeros(2, card["in_chans"], *card["input_size"])
    with torch.no_grad():
        assert tuple(enc(x).shape) == (2, card["embed_dim"])


def test_two_patch_values_for_3d_views_of_3d_data_are_refused_before_training(archive, tmp_path, capsys):
    # two values on 3D data mean one z plane: 3D views would stretch it through the volume
    data_key, overrides = CASES["ct_mae3d"]
    overrides = [o if o != "[16,16,16]" else "[16,16]" for o in overrides]
    rc = main(["pretrain", "--config", str(RECIPES / "ct_mae3d.yaml"), "--run-dir", str(tmp_path / "run"),
               "--data.root", archive[data_key], "--data.batch_size", "4", "--data.num_workers", "0",
               "--data.stats_patches", "8", "--trainer.max_steps", "2", *overrides])
    assert rc == 2
    err = capsys.readouterr().err
    assert "data.patch_size [16, 16] has 2 values, but the data and the views are 3D" in err
    assert not (tmp_path / "run" / "checkpoints").exists()
