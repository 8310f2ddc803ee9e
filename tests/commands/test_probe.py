"""`domainssl probe`: the real command on generated TIFFs and a tiny exported encoder."""

import json

import numpy as np
import pytest

from domainssl.cli import main


@pytest.fixture
def labeled_csv(tmp_path):
    import tifffile

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:16, :16]
    rows = ["path,label"]
    for i in range(16):
        label = i % 2
        img = 100 + 20 * np.sin((yy if label else xx) * 1.3 + rng.uniform(0, 6)) + rng.normal(0, 3, (16, 16))
        tifffile.imwrite(tmp_path / f"{i}.tif", np.stack([img, img]).astype(np.uint16), photometric="minisblack",
                         metadata={"axes": "CYX"})
        rows.append(f"{i}.tif,{'rows' if label else 'cols'}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "labels.csv"


@pytest.fixture
def encoder_dir(tmp_path):
    import torch

    from domainssl.models import build_encoder
    from domainssl.transfer.encoder_io import export_encoder, make_card

    torch.manual_seed(0)
    enc = build_encoder("test_resnet", 2, 2, (16, 16))
    card = make_card(enc, channel_names=["ch0", "ch1"],
                     normalization={"mode": "zscore", "stats": {"channel_names": ["ch0", "ch1"],
                                                                "mean": [100.0, 100.0], "std": [20.0, 20.0]}})
    return export_encoder(enc, tmp_path / "enc", card)


def test_probe_writes_table_json_csv_plot(labeled_csv, encoder_dir, tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["probe", str(encoder_dir), "--data", str(labeled_csv), "--shots", "1,3,all", "--seeds", "2",
               "--mode", "linear,knn", "--knn-k", "3", "--test-fraction", "0.5", "--out", str(out)])
    assert rc == 0
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == 2 * 2 * 3
    assert {r["encoder"] for r in rows} == {"pretrained", "random_init"}
    assert {r["shots"] for r in rows} == {1, 3, "all"}
    assert all(r["n_test"] == 8 for r in rows)
    assert (out / "results.csv").is_file() and (out / "results.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "Label efficiency on labels" in printed and "random_init" in printed


def test_probe_channel_mismatch_is_a_clear_error(labeled_csv, encoder_dir, tmp_path, capsys):
    card_path = encoder_dir / "encoder.json"
    card = json.loads(card_path.read_text())
    card["channel_names"] = card["normalization"]["stats"]["channel_names"] = ["B04", "B08"]
    card_path.write_text(json.dumps(card))
    rc = main(["probe", str(encoder_dir), "--data", str(labeled_csv), "--out", str(tmp_path / "r")])
    assert rc == 2
    assert "--channel-map" in capsys.readouterr().err
    rc = main(["probe", str(encoder_dir), "--data", str(labeled_csv), "--out", str(tmp_path / "r"),
               "--channel-map", "B04=ch0,B08=ch1", "--shots", "2", "--seeds", "1", "--no-random-init",
               "--test-fraction", "0.5"])
    assert rc == 0
    assert [r["encoder"] for r in json.loads((tmp_path / "r" / "results.json").read_text())] == ["pretrained"]
