"""`domainssl pretrain` refuses what cannot run before it reads any data (bad hyper-parameters,
misspelt keys, a GPU that is not there, a --run-dir of someone else's files), in one line each;
an epoch-limited run shorter than the logging interval still logs and draws its curves."""

import json
from pathlib import Path

import pytest

from domainssl.cli import main
from tiny_runs import tiny_pretrain_args

QUIET = ["--pictures.views", "false", "--pictures.reconstructions", "false"]


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    from domainssl.data.synthetic import make_demo_archive

    root = tmp_path_factory.mktemp("archive")
    info = make_demo_archive(root, seed=0, n_unlabeled=8, n_train_per_class=2, n_test_per_class=1,
                             extras=False)
    return info["tiles"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("override,message", [
    (["--method.lr", "1,5e-4"], "error: override --method.lr: method.lr is '1,5e-4' (text); expected a "
                                "positive number"),
    (["--method.decoder_dim", "-3"], "error: override --method.decoder_dim: method.decoder_dim is -3; "
                                     "expected a whole number >= 1"),
    (["--method.warmup_step", "0"], "unknown key method.warmup_step (did you mean method.warmup_steps?)"),
    (["--method.mask_ration", "0.5"], "unknown key method.mask_ration (did you mean method.mask_ratio?)"),
    (["--trainer.max_step", "5"], "unknown key trainer.max_step (did you mean trainer.max_steps?)"),
    (["--data.batchsize", "4"], "unknown key data.batchsize (did you mean data.batch_size?)"),
])
def test_bad_keys_and_values_are_refused_before_the_archive_is_scanned(tmp_path, capsys, override, message):
    # The archive does not exist: had the scan come first, its "no such file or folder" would say so.
    run = tmp_path / "run"
    args = tiny_pretrain_args(str(tmp_path / "no_archive"), run, 2)
    assert main([*args, *override]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("domainssl pretrain: error:") and message in line
    assert not run.exists()


def test_a_gpu_asked_for_where_none_is_visible_is_refused_before_the_scan(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = tmp_path / "run"
    for accel in ("gpu", "cuda"):
        assert main([*tiny_pretrain_args(str(tmp_path / "no_archive"), run, 2),
                     "--trainer.accelerator", accel]) == 2
        line = _one_error_line(capsys)
        assert f"error: trainer.accelerator '{accel}': no GPU is visible here" in line
        assert "--trainer.accelerator cpu" in line and not run.exists()


def test_a_folder_of_other_files_is_not_taken_for_a_run(tiles, tmp_path, capsys):
    # its config.yaml and stats.json were overwritten without a word
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("my: settings\n")
    (mine / "stats.json").write_text('{"mine": true}\n')
    assert main(tiny_pretrain_args(tiles, mine, 2)) == 2
    line = _one_error_line(capsys)
    assert f"{mine} is not empty and holds no domainssl run (found config.yaml, stats.json)" in line
    assert "empty or new --run-dir" in line
    assert (mine / "config.yaml").read_text() == "my: settings\n"
    assert (mine / "stats.json").read_text() == '{"mine": true}\n'
    assert sorted(p.name for p in mine.iterdir()) == ["config.yaml", "stats.json"]
    # an empty folder is fine, and so is a scan the recipe names from inside it
    empty = tmp_path / "empty"
    empty.mkdir()
    from domainssl.io.scan import scan_archive

    scan_archive(tiles, empty / "manifest.jsonl", jobs=0)
    assert main([*tiny_pretrain_args(tiles, empty, 1), "--data.manifest", str(empty / "manifest.jsonl"),
                 *QUIET]) == 0


def test_a_run_that_failed_in_the_scan_is_rerun_into_its_folder(tiles, tmp_path, capsys):
    # it left its config.yaml (and no run.json): the folder is still recognised as a run
    run = tmp_path / "run"
    assert main(tiny_pretrain_args(str(tmp_path / "no_archive"), run, 1)) == 2
    assert "no such file or folder to scan" in capsys.readouterr().err
    assert (run / "config.yaml").is_file() and not (run / "run.json").exists()
    assert main([*tiny_pretrain_args(tiles, run, 1), *QUIET]) == 0
    assert json.loads((run / "run.json").read_text())["final"]["global_step"] == 1


def test_an_epoch_limited_run_shorter_than_the_logging_interval_logs_its_curves(tiles, tmp_path, capsys):
    # the logging interval was capped by max_steps only: an epoch run logged no metrics, drew no
    # curves. A single patch size is the same on every axis.
    run = tmp_path / "run"
    assert main([*tiny_pretrain_args(tiles, run, 1), "--trainer.max_steps", "-1", "--trainer.max_epochs",
                 "1", "--log.every_n_steps", "50", "--data.patch_size", "16", *QUIET]) == 0
    out = capsys.readouterr().out
    total = int(out.split("[domainssl] pretraining mae: ")[1].split(" steps")[0])
    assert 1 < total < 50
    from domainssl.train.pictures import read_metrics

    steps, _ = read_metrics(run / "csv")["train/loss"]
    assert steps.tolist() == [total - 1]
    assert (run / "pictures" / "curves.png").is_file()
    facts = json.loads((run / "run.json").read_text())
    assert facts["final"]["global_step"] == total and facts["input_size"] == [16, 16]


def test_a_misspelt_model_key_is_named(tiles, tmp_path, capsys):
    # model keys depend on the architecture, so they are checked when the encoder is built
    args = tiny_pretrain_args(tiles, tmp_path / "run", 1) + QUIET + ["--model.drop_path_rat", "0.1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "model.drop_path_rat is not an argument of the" in err and "misspelt key" in err
    assert "Traceback" not in err
