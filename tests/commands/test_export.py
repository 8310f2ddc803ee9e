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
def tiles(tmp_path_factory):
    from domainssl.data.synthetic import make_demo_archive

    root = tmp_path_factory.mktemp("archive")
    return make_demo_archive(root / "archive", seed=0, n_unlabeled=8, n_train_per_class=1, n_test_per_class=1,
                             extras=False)["tiles"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiles):
    from pathlib import Path

    root = tmp_path_factory.mktemp("export")
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
    assert card["method"]["exported"] == "online"
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


@pytest.fixture(scope="module")
def dino_run(tmp_path_factory, tiles):
    """A 2-step DINO run (tiny ViT, multi-crop) on the same tiles."""
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "microscopy_dino.yaml"
    run = tmp_path_factory.mktemp("dino") / "run"
    assert main(["pretrain", "--config", str(recipe), "--run-dir", str(run), "--data.root", tiles,
                 "--data.batch_size", "4", "--data.num_workers", "0", "--data.stats_patches", "8",
                 "--trainer.max_steps", "2", "--trainer.accelerator", "cpu", "--method.warmup_steps", "0",
                 "--pictures.views", "false", "--data.patch_size", "[16,16]", "--data.background", "null",
                 "--data.patches_per_image", "1", "--views.global.size", "16", "--views.local.size", "8",
                 "--views.n_local", "2", "--model.arch", "test_vit", "--method.out_dim", "64",
                 "--method.hidden_dim", "32", "--method.bottleneck_dim", "16",
                 "--method.warmup_teacher_temp_steps", "0", "--method.freeze_last_layer_steps", "0"]) == 0
    return run


def test_dino_exports_the_ema_teacher(dino_run, tmp_path):
    import timm
    from safetensors.torch import load_file

    import domainssl

    out = tmp_path / "enc"
    assert main(["export", str(dino_run), "--out", str(out)]) == 0
    card = read_card(out)
    assert card["method"]["name"] == "dino" and card["method"]["exported"] == "teacher (EMA)"
    state = torch.load(str(dino_run / "checkpoints" / "last.ckpt"), weights_only=True)["state_dict"]
    exported = load_file(str(out / "model.safetensors"))
    # test_vit wraps a timm model as .model; the file has timm's key names
    teacher = {k: state[f"teacher_encoder.model.{k}"] for k in exported}
    student = {k: state[f"encoder.model.{k}"] for k in exported}
    assert all(torch.equal(exported[k], teacher[k]) for k in exported)
    assert not all(torch.equal(exported[k], student[k]) for k in exported)
    # the teacher round-trips through load_encoder and the timm one-liner
    enc = domainssl.load_encoder(out)
    x = torch.randn(2, card["in_chans"], *card["input_size"])
    model = eval(timm_one_liner(card, str(out / "model.safetensors")), {"timm": timm}).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), enc(x))


def _export_error(args, capsys) -> str:
    assert main(["export", *map(str, args)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("domainssl export: error: ") and err.count("\n") == 1  # one line, no traceback
    return err


def test_broken_checkpoints_and_out_files_are_one_line_errors(run, tmp_path, capsys):
    ckpts = run / "checkpoints"
    truncated = ckpts / "truncated.ckpt"
    truncated.write_bytes((ckpts / "last.ckpt").read_bytes()[:100_000])
    tensor_file = ckpts / "tensor.ckpt"
    torch.save(torch.zeros(3), tensor_file)
    try:
        err = _export_error([truncated, "--out", tmp_path / "a"], capsys)
        assert "truncated.ckpt: not a PyTorch checkpoint" in err and "truncated" in err
        err = _export_error([run / "config.yaml", "--out", tmp_path / "a"], capsys)
        assert "config.yaml: not a PyTorch checkpoint" in err
        err = _export_error([tensor_file, "--out", tmp_path / "a"], capsys)
        assert "tensor.ckpt: a PyTorch file but not a pretraining checkpoint" in err
    finally:
        truncated.unlink()
        tensor_file.unlink()
    (tmp_path / "taken").write_text("x")
    err = _export_error([run, "--out", tmp_path / "taken"], capsys)
    assert "taken: exists and is a file" in err and "choose a new folder" in err
    err = _export_error([run, "--out", tmp_path / "taken" / "enc"], capsys)
    assert "taken: exists and is a file" in err
    assert not (tmp_path / "a").exists()
    # a project folder is not overwritten (its README.md was replaced by the card's)
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("MY NOTES")
    err = _export_error([run, "--out", project], capsys)
    assert "project: holds README.md and is not an encoder directory" in err and "new or empty folder" in err
    assert (project / "README.md").read_text() == "MY NOTES"
    # an earlier export is replaced
    assert main(["export", str(run), "--out", str(tmp_path / "enc")]) == 0
    assert main(["export", str(run), "--out", str(tmp_path / "enc")]) == 0
