"""`domainssl export`: a run or checkpoint -> safetensors + card that load in domainssl and timm."""

import json

import pytest
import torch

from domainssl.cli import main
from domainssl.transfer.card import read_card, timm_one_liner

TINY = ["--data.patch_size", "[16,16]", "--data.patches_per_image", "1", "--views.global.size", "16",
        "--model.arch", "test_resnet", "--method.proj_hidden_dim", "32", "--method.proj_dim", "16",
        "--method.warmup_steps", "0", "--pictures.views", "false"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from pathlib import Path

    from domainssl.data.synthetic import make_demo_archive

    root = tmp_path_factory.mktemp("export")
    tiles = make_demo_archive(root / "archive", seed=0, n_unlabeled=8, n_train_per_class=1, n_test_per_class=1,
                              extras=False)["tiles"]
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "multispectral_simclr.yaml"
    run = root / "run"
    assert main(["pretrain", "--config", str(recipe), "--run-dir", str(run), "--data.root", tiles,
                 "--data.batch_size", "4", "--data.num_workers", "0", "--data.stats_patches", "8",
                 "--trainer.max_steps", "2", "--checkpoint.every_n_steps", "1", "--trainer.accelerator", "cpu",
                 *TINY]) == 0
    return run


def test_export_run_writes_a_complete_card(run, tmp_path):
    import domainssl

    out = tmp_path / "enc"
    assert main(["export", str(run), "--out", str(out)]) == 0
    card = read_card(out)
    assert card["arch"] == "test_resnet" and card["in_chans"] == 4 and card["spatial_dims"] == 2
    assert card["channel_names"] == ["B02", "B03", "B04", "B08"] and card["input_size"] == [16, 16]
    assert card["spacing"] == [10.0, 10.0] and card["units"] == ["m", "m"]
    assert card["normalization"]["mode"] == "stats_range"
    assert card["normalization"]["stats"]["channel_names"] == card["channel_names"]
    assert card["method"]["name"] == "simclr" and card["method"]["temperature"] == 0.2
    assert card["data"]["n_images"] == 8 and card["data"]["formats"] == {"geotiff": 8}
    assert card["metrics"]["global_step"] == 2 and card["metrics"]["loss"] > 0
    assert card["weights"]["key_format"] == "timm"
    enc = domainssl.load_encoder(out)
    x = torch.randn(3, 4, 16, 16)
    with torch.no_grad():
        feats = enc(x)
    assert tuple(feats.shape) == (3, card["embed_dim"])

    import timm

    model = eval(timm_one_liner(card, str(out / "model.safetensors")), {"timm": timm}).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), feats)


def test_export_a_step_checkpoint_and_refuse_a_bare_one(run, tmp_path, capsys):
    ckpt = run / "checkpoints" / "step0000001.ckpt"
    assert main(["export", str(ckpt), "--out", str(tmp_path / "step1")]) == 0
    assert read_card(tmp_path / "step1")["metrics"]["global_step"] == 1
    bare = tmp_path / "elsewhere" / "model.ckpt"
    bare.parent.mkdir()
    bare.write_bytes(ckpt.read_bytes())
    assert main(["export", str(bare), "--out", str(tmp_path / "x")]) == 2
    assert "run.json" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2


def test_export_never_unpickles(run, tmp_path, monkeypatch):
    real_load = torch.load
    seen = []

    def guarded(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", guarded)
    assert main(["export", str(run), "--out", str(tmp_path / "enc")]) == 0
    assert seen and all(w is True for w in seen)
    assert json.loads((tmp_path / "enc" / "encoder.json").read_text())["weights"]["sha256"]
