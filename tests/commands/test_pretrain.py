"""`domainssl pretrain`: run directory contents, pictures, overrides, resume and clear errors."""

import json
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from domainssl.cli import main
from tiny_runs import tiny_pretrain_args
from domainssl.train.recipe import RecipeError, apply_overrides, load_recipe, parse_overrides

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    from domainssl.data.synthetic import make_demo_archive

    root = tmp_path_factory.mktemp("archive")
    info = make_demo_archive(root, seed=0, n_unlabeled=8, n_train_per_class=2, n_test_per_class=1,
                             extras=False)
    return info["tiles"], info["labels_csv"]


def _pretrain(archive, run, steps, *extra):
    return main([*tiny_pretrain_args(archive[0], run, steps), *extra])


def test_run_directory_holds_config_checkpoints_logs_pictures(tiles, tmp_path, capsys):
    run = tmp_path / "run"
    assert _pretrain(tiles, run, 3, "--monitor.labels", tiles[1], "--monitor.every_n_steps", "2") == 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["root"] == tiles[0] and config["trainer"]["max_steps"] == 3
    assert config["model"]["embed_dim"] == 48
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "checkpoints" / "step0000002.ckpt").is_file()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    metrics = (run / "csv" / "metrics.csv").read_text()
    assert "train/loss" in metrics and "train/emb_std" in metrics and "val/knn_acc" in metrics
    for pic in ("curves.png", "views.png", "mae_reconstructions.png"):
        assert (run / "pictures" / pic).read_bytes()[:4] == b"\x89PNG"
    facts = json.loads((run / "run.json").read_text())
    assert facts["channel_names"] == ["B02", "B03", "B04", "B08"] and facts["input_size"] == [16, 16]
    assert facts["spacing"] == [10.0, 10.0] and facts["units"] == ["m", "m"]
    assert facts["normalization"]["mode"] == "stats_range" and len(facts["normalization"]["stats"]["p99"]) == 4
    assert facts["final"]["global_step"] == 3 and facts["final"]["loss"] > 0
    assert facts["monitor"]["items"] == 8 and 0 <= facts["final"]["knn_acc"] <= 1
    out = capsys.readouterr().out
    assert "[domainssl] step 3/3" in out and "domainssl export" in out

    # Resume continues from the last checkpoint with a longer schedule.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["pretrain", "--resume", str(run), "--trainer.max_steps", "5", "--log.every_n_steps", "1",
                     "--pictures.views", "false", "--pictures.reconstructions", "false"]) == 0
    assert not [w for w in caught if "exists and is not empty" in str(w.message)]
    facts = json.loads((run / "run.json").read_text())
    assert facts["final"]["global_step"] == 5
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["max_steps"] == 5
    # The curves keep the steps before the resume (Lightning's CSVLogger restarts metrics.csv).
    from domainssl.train.pictures import read_metrics

    steps, losses = read_metrics(run / "csv")["train/loss"]
    assert steps.tolist() == [0, 1, 2, 3, 4] and (run / "csv" / "metrics.part1.csv").is_file()

    # Starting afresh into a folder that holds a run would mix two runs' checkpoints and logs.
    assert _pretrain(tiles, run, 3) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and f"--resume {run}" in err

    # Resuming a run that has trained its steps says how to train further (it crashed in the
    # pictures with StopIteration).
    assert main(["pretrain", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "already trained 5 steps (max_steps 5)" in err and "--trainer.max_steps N" in err


def test_a_run_that_stopped_before_its_first_checkpoint_is_replaced_by_the_rerun(tiles, tmp_path, capsys):
    # a setup error found after run.json was written: the rerun with the fix must not be refused
    run = tmp_path / "run"
    assert _pretrain(tiles, run, 2, "--data.patches_per_image", "1", "--data.batch_size", "64") == 2
    assert "less than one batch" in capsys.readouterr().err and (run / "run.json").is_file()
    (run / "csv").mkdir(exist_ok=True)
    (run / "csv" / "metrics.csv").write_text("step,train/loss\n0,9.9\n")   # the old run's log
    assert _pretrain(tiles, run, 2, "--pictures.views", "false", "--pictures.reconstructions", "false") == 0
    assert "stopped before its first checkpoint: replacing it" in capsys.readouterr().out
    assert json.loads((run / "run.json").read_text())["final"]["global_step"] == 2
    assert "9.9" not in (run / "csv" / "metrics.csv").read_text()


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tiles, tmp_path):
    # 3 steps, then --resume to 6, against 6 steps straight: the same weights to the bit. MAE
    # draws its masks from the global generator (kept in the checkpoint); the stop falls in the
    # middle of an epoch (Lightning then saves the next epoch's number with this epoch's batch
    # count), and with the shuffle buffer the data order is the buffered one.
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    same = ["--data.patches_per_image", "2", "--pictures.views", "false",
            "--pictures.reconstructions", "false"]
    assert _pretrain(tiles, straight, 6, *same) == 0
    assert _pretrain(tiles, halves, 3, "--method.max_steps", "6", *same) == 0
    assert main(["pretrain", "--resume", str(halves), "--trainer.max_steps", "6"]) == 0
    a, b = (torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
            for run in (straight, halves))
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_errors_say_what_to_do(tmp_path, capsys):
    assert main(["pretrain", "--config", str(RECIPES / "sentinel2_mae.yaml"), "--run-dir", str(tmp_path)]) == 2
    assert "--data.root" in capsys.readouterr().err
    assert main(["pretrain", "--resume", str(tmp_path)]) == 2
    assert "config.yaml" in capsys.readouterr().err or "recipe" in capsys.readouterr().err
    assert main(["pretrain"]) == 2
    assert "--config" in capsys.readouterr().err


def test_spawning_strategies_are_refused_with_what_to_use(tiles, tmp_path, capsys):
    assert _pretrain(tiles, tmp_path / "run", 1, "--trainer.strategy", "ddp_spawn") == 2
    err = capsys.readouterr().err
    assert "trainer.strategy 'ddp_spawn' is not supported" in err and "torchrun" in err


def test_data_errors_are_messages_not_tracebacks(tiles, tmp_path, capsys):
    # A mistyped archive path, and an archive of images the recipe cannot use (4-band tiles for
    # the 12-band recipe): one line each saying what was found and what to change.
    recipe = str(RECIPES / "sentinel2_mae.yaml")
    missing = tmp_path / "no_such_archive"
    assert main(["pretrain", "--config", recipe, "--run-dir", str(tmp_path / "a"),
                 "--data.root", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"error: {missing}: no such file or folder to scan" in err and "Traceback" not in err
    assert main(["pretrain", "--config", recipe, "--run-dir", str(tmp_path / "b"),
                 "--data.root", tiles[0], "--data.num_workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "no usable image matches the data settings" in err
    assert "channels ['B01', 'B05'" in err and "missing (the image has ['B02', 'B03', 'B04', 'B08'])" in err


def test_overrides_parse_yaml_values():
    parsed = parse_overrides(["--data.root", "/a b", "--trainer.max_steps=7", "--data.patch_size", "[8, 8]",
                              "--trainer.max_epochs", "-1", "--model.drop", "null", "--seed", "3"])
    assert parsed == [(["data", "root"], "/a b"), (["trainer", "max_steps"], 7), (["data", "patch_size"], [8, 8]),
                      (["trainer", "max_epochs"], -1), (["model", "drop"], None), (["seed"], 3)]
    with pytest.raises(RecipeError, match="no value"):
        parse_overrides(["--data.root"])
    with pytest.raises(RecipeError, match="keys start with"):
        parse_overrides(["--dat.root", "x"])
    recipe = apply_overrides(load_recipe(RECIPES / "multispectral_simclr.yaml"),
                             ["--views.global.size", "32", "--method.temperature", "0.5"])
    assert recipe["views"]["global"] == {"size": 32, "scale": [0.3, 1.0]} and recipe["method"]["temperature"] == 0.5


def test_recipe_validation(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {root: x}\nviews: {preset: rgb}\nmodel: {}\nmethod: {name: simclr}\ntrainer: {}\n")
    with pytest.raises(RecipeError, match="model.arch"):
        load_recipe(bad)
    bad.write_text("data: {}\nviews: {preset: rgb}\nmodel: {arch: x}\nmethod: {name: simclr}\nmodle: {}\n")
    with pytest.raises(RecipeError, match="modle"):
        load_recipe(bad)


def test_bad_model_option_is_a_recipe_error(tiles, tmp_path, capsys):
    rc = _pretrain(tiles, tmp_path / "run", 1, "--model.embed_dim", "50")
    assert rc == 2
    assert "model:" in capsys.readouterr().err


@pytest.mark.parametrize("workers", [0, 1])
def test_unreadable_files_are_counted_in_the_run_facts(tiles, tmp_path, capsys, workers):
    # a file that breaks after the scan: its patches are replaced by other images', and the run
    # says how many and which (a DataLoader worker's count reaches the training process)
    import shutil

    from domainssl.io.scan import scan_archive

    archive = tmp_path / "tiles"
    shutil.copytree(tiles[0], archive)
    scan_archive(archive, tmp_path / "manifest.jsonl", jobs=0)
    broken = sorted(archive.glob("*.tif"))[0]
    broken.write_bytes(b"not a tiff any more")
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match="skipping unreadable patch"):
        code = _pretrain((str(archive), None), run, 4, "--data.manifest", str(tmp_path / "manifest.jsonl"),
                         "--data.num_workers", str(workers), "--pictures.views", "false",
                         "--pictures.reconstructions", "false")
    assert code == 0
    skips = json.loads((run / "run.json").read_text())["final"]["read_skips"]
    assert skips["count"] >= 1 and all(broken.name in line for line in skips["examples"])
    out = capsys.readouterr().out
    assert f"{skips['count']} patch(es) of unreadable images were replaced" in out and broken.name in out


def test_a_value_torch_or_lightning_refuses_is_one_line_not_a_traceback(tiles, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert _pretrain(tiles, run, 2, "--trainer.precision", "fp17") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("domainssl pretrain: error: Precision 'fp17' is invalid")
    assert "Traceback" not in "".join(err)
    # a developer can still see where it came from
    monkeypatch.setenv("DOMAINSSL_TRACEBACK", "1")
    with pytest.raises(ValueError, match="fp17"):
        _pretrain(tiles, tmp_path / "run2", 2, "--trainer.precision", "fp17")


def test_the_card_spacing_of_2d_views_cut_from_3d_patches_is_the_views_own():
    # microscopy_dino with data.spatial_dims 3: 128 px (Y, X) of 0.512 µm resized to 32 px views
    from types import SimpleNamespace

    from domainssl.train.pretraining import _view_spacing

    view = SimpleNamespace(target_spacing=None)
    dm = SimpleNamespace(spatial_dims=3, patch_size=[8, 128, 128], patch_unit="px",
                         spacing=[0.499, 0.512, 0.512])
    assert _view_spacing(dm, view, 2, [32, 32]) == pytest.approx([2.048, 2.048])
    dm = SimpleNamespace(spatial_dims=3, patch_size=[64], patch_unit="µm", spacing=[0.5, 0.5, 0.5])
    assert _view_spacing(dm, view, 2, [32, 32]) == pytest.approx([2.0, 2.0])
    assert _view_spacing(dm, view, 3, [32, 32, 32]) == pytest.approx([2.0, 2.0, 2.0])


def test_a_run_stopped_by_sigterm_exits_non_zero_and_says_how_to_go_on(tiles, tmp_path, capsys, monkeypatch):
    # Lightning ends a fit on SIGTERM with SystemExit() (status 0): a `pretrain && export`
    # chain would go on with a half-trained encoder
    import lightning as L
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    def terminated(self, *args, **kwargs):
        raise SIGTERMException

    monkeypatch.setattr(L.Trainer, "fit", terminated)
    run = tmp_path / "run"
    assert _pretrain(tiles, run, 3) == 143
    err = capsys.readouterr().err
    assert "stopped by SIGTERM at step 0, before its first checkpoint" in err
    assert "run the same command again" in err and "--resume" not in err
    assert not (run / ".running").exists()                # the rerun may replace the folder
    monkeypatch.undo()
    assert _pretrain(tiles, run, 2, "--pictures.views", "false", "--pictures.reconstructions", "false") == 0


def test_a_live_run_without_a_checkpoint_is_not_replaced(tiles, tmp_path, capsys):
    import os
    import socket

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    (run / ".running").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    assert _pretrain(tiles, run, 2) == 2
    assert "a run is training there (process" in capsys.readouterr().err
    assert (run / "run.json").is_file()
    # a holder that is gone (killed without cleaning up) does not block the folder
    (run / ".running").write_text(json.dumps({"pid": 2 ** 22 + 12345, "host": socket.gethostname()}))
    assert _pretrain(tiles, run, 2, "--pictures.views", "false", "--pictures.reconstructions", "false") == 0
    assert not (run / ".running").exists()


def test_progress_says_each_step_once_under_gradient_accumulation(tiles, tmp_path, capsys):
    run = tmp_path / "run"
    assert _pretrain(tiles, run, 2, "--trainer.accumulate_grad_batches", "2", "--log.every_n_steps", "1",
                     "--pictures.views", "false", "--pictures.reconstructions", "false") == 0
    out = capsys.readouterr().out
    assert out.count("[domainssl] step 1/2") == 1 and out.count("[domainssl] step 2/2") == 1


def test_resuming_a_folder_that_holds_no_run_says_so(tmp_path, capsys):
    assert main(["pretrain", "--resume", str(tmp_path / "nope")]) == 2
    assert "no run there" in capsys.readouterr().err


def test_the_knn_monitor_takes_a_channel_map_and_reports_bad_labels_in_one_line(tiles, tmp_path, capsys):
    quiet = ["--pictures.views", "false", "--pictures.reconstructions", "false", "--monitor.every_n_steps", "1"]
    assert _pretrain(tiles, tmp_path / "a", 1, "--monitor.labels", tiles[1], "--monitor.channel_map",
                     "B02=B08,B08=B02", *quiet) == 0
    assert json.loads((tmp_path / "a" / "run.json").read_text())["monitor"]["items"] == 8
    capsys.readouterr()
    assert _pretrain(tiles, tmp_path / "b", 1, "--monitor.labels", tiles[1], "--monitor.channel_map",
                     "[0,1]", *quiet) == 2
    err = capsys.readouterr().err
    assert "domainssl pretrain: error: monitor.labels" in err and "monitor.channel_map" in err
    assert "Traceback" not in err


def test_a_run_shorter_than_the_logging_interval_still_logs_its_curves(tiles, tmp_path):
    run = tmp_path / "run"
    assert _pretrain(tiles, run, 3, "--log.every_n_steps", "50", "--pictures.views", "false",
                     "--pictures.reconstructions", "false") == 0
    assert "train/loss" in (run / "csv" / "metrics.csv").read_text()
    assert (run / "pictures" / "curves.png").is_file()
