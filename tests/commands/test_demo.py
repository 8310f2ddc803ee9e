"""`domainssl demo`: the whole path on a (small) generated archive, through the real command."""

import json

from domainssl.cli import main


def test_demo_runs_scan_pretrain_export_probe(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--steps", "2", "--tiles", "64", "--labeled-per-class", "3",
               "--shots", "1,all", "--seeds", "2"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "GENERATED" in printed
    assert "1/4 scan" in printed and "rejected" in printed  # the scan reports the truncated file
    assert "Label efficiency" in printed and "pretrained minus random init" in printed
    rows = json.loads((out / "probe" / "results.json").read_text())
    assert {r["encoder"] for r in rows} == {"pretrained", "random_init"}
    assert {r["mode"] for r in rows} == {"linear", "knn"}
    assert (out / "encoder" / "model.safetensors").is_file() and (out / "probe" / "results.png").is_file()
    assert json.loads((out / "probe" / "meta.json").read_text())["generated_archive"] is True

    # A second demo into the same folder replaces its own run; a foreign run/ folder is kept.
    assert main(["demo", "--out", str(out), "--steps", "1", "--tiles", "64", "--labeled-per-class", "3",
                 "--shots", "1", "--seeds", "1"]) == 0
    assert json.loads((out / "run" / "run.json").read_text())["final"]["global_step"] == 1
    other = tmp_path / "other"
    (other / "run").mkdir(parents=True)
    (other / "run" / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["demo", "--out", str(other), "--steps", "1", "--tiles", "64"]) == 2
    assert "is not a domainssl run" in capsys.readouterr().err
    assert (other / "run" / "notes.txt").read_text() == "mine"


def test_demo_needs_labels_with_data(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "--labels" in capsys.readouterr().err
