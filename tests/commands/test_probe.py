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


def _probe(encoder_dir, labeled_csv, out, *extra):
    return main(["probe", str(encoder_dir), "--data", str(labeled_csv), "--shots", "2", "--seeds", "1",
                 "--test-fraction", "0.5", "--out", str(out), *map(str, extra)])


def test_compared_encoders_in_same_named_folders_get_distinct_rows(labeled_csv, encoder_dir, tmp_path):
    import csv
    import shutil

    for run in ("runA", "runB"):
        shutil.copytree(encoder_dir, tmp_path / run / "encoder")
    out = tmp_path / "report"
    assert _probe(encoder_dir, labeled_csv, out, "--compare", tmp_path / "runA" / "encoder",
                  tmp_path / "runB" / "encoder") == 0
    rows = json.loads((out / "results.json").read_text())
    # with --compare the main encoder is named by its path too, not "pretrained"
    assert [r["encoder"] for r in rows] == ["enc", "runA/encoder", "runB/encoder", "random_init"]
    with open(out / "results.csv") as fh:
        assert [r["encoder"] for r in csv.DictReader(fh)] == [r["encoder"] for r in rows]
    meta = json.loads((out / "meta.json").read_text())
    candidates = meta["candidates"]
    assert sorted(candidates) == ["enc", "random_init", "runA/encoder", "runB/encoder"]
    assert candidates["runB/encoder"]["encoder_dir"] == str(tmp_path / "runB" / "encoder")
    assert candidates["enc"]["encoder_dir"] == str(encoder_dir) and meta["encoder_name"] == "enc"
    assert candidates["random_init"]["random_init_of"] == str(encoder_dir)


def test_compare_names_the_main_encoder_by_its_path(labeled_csv, encoder_dir, tmp_path, capsys):
    # `probe runA/encoder --compare runB/encoder`: rows runA/encoder, runB/encoder, random_init
    # (they read pretrained, random_init, encoder before: which run was "pretrained"?)
    import shutil

    for run in ("runA", "runB"):
        shutil.copytree(encoder_dir, tmp_path / run / "encoder")
    out = tmp_path / "report"
    assert _probe(tmp_path / "runA" / "encoder", labeled_csv, out, "--compare", tmp_path / "runB" / "encoder") == 0
    rows = json.loads((out / "results.json").read_text())
    assert [r["encoder"] for r in rows] == ["runA/encoder", "runB/encoder", "random_init"]
    table = capsys.readouterr().out
    assert "runA/encoder" in table and "runB/encoder" in table and "pretrained" not in table
    meta = json.loads((out / "meta.json").read_text())
    assert meta["encoder_name"] == "runA/encoder"
    assert meta["candidates"]["runA/encoder"]["encoder_dir"] == str(tmp_path / "runA" / "encoder")
    # alone, the main encoder keeps the name "pretrained"
    assert _probe(tmp_path / "runA" / "encoder", labeled_csv, tmp_path / "alone") == 0
    assert [r["encoder"] for r in json.loads((tmp_path / "alone" / "results.json").read_text())] == \
        ["pretrained", "random_init"]


def test_encoder_names_are_short_unique_and_not_reserved(tmp_path):
    from domainssl.transfer.evaluate import encoder_names

    assert encoder_names([tmp_path / "a" / "enc", tmp_path / "b" / "enc", tmp_path / "c" / "other"]) == \
        ["a/enc", "b/enc", "other"]
    assert encoder_names([tmp_path / "x" / "pretrained", tmp_path / "random_init"]) == \
        ["x/pretrained", f"{tmp_path.name}/random_init"]
    assert encoder_names([tmp_path / "enc", tmp_path / "enc"]) == ["enc", "enc (2)"]
    assert encoder_names([tmp_path / "p" / "q" / "enc", tmp_path / "r" / "q" / "enc"]) == ["p/q/enc", "r/q/enc"]


def test_finetune_runs_on_the_requested_device(labeled_csv, encoder_dir, tmp_path, monkeypatch):
    import domainssl.transfer.finetune as finetune

    seen = []

    def fake_finetune(encoder, train_inputs, train_y, test_inputs, num_classes, **kw):
        seen.append(kw)
        return np.zeros(len(test_inputs), dtype=int)

    monkeypatch.setattr(finetune, "finetune_predict", fake_finetune)
    assert _probe(encoder_dir, labeled_csv, tmp_path / "r", "--mode", "finetune", "--no-random-init",
                  "--device", "cpu", "--finetune-steps", "7") == 0
    assert seen and all(kw["device"] == "cpu" and kw["steps"] == 7 for kw in seen)


def _parse_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("device, expected", [
    ("gpu", "unknown device 'gpu'; use cpu, cuda, cuda:N or mps (available here: cpu"),
    ("meta", "device 'meta' is not supported"),
])
def test_unknown_device_is_one_clear_line(device, expected, capsys):
    err = _parse_error(["probe", "enc", "--data", "x.csv", "--out", "r", "--device", device], capsys)
    assert err.startswith("domainssl probe: error: argument --device: ") and expected in err


def test_missing_cuda_is_one_clear_line(capsys):
    import torch

    if torch.cuda.is_available():
        assert _parse_error(["probe", "enc", "--data", "x.csv", "--out", "r", "--device", "cuda:99"],
                            capsys).endswith(f"this machine has {torch.cuda.device_count()} CUDA device(s), "
                                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    else:
        err = _parse_error(["probe", "enc", "--data", "x.csv", "--out", "r", "--device", "cuda"], capsys)
        assert "device 'cuda': CUDA is not available here" in err and "available here: cpu" in err


@pytest.mark.parametrize("option, value, expected", [
    ("--seeds", "0", "expected a whole number >= 1, found 0"),
    ("--seeds", "-1", "expected a whole number >= 1, found -1"),
    ("--finetune-steps", "0", "expected a whole number >= 1, found 0"),
    ("--batch-size", "0", "expected a whole number >= 1, found 0"),
    ("--knn-k", "x", "expected a whole number >= 1, found 'x'"),
    ("--test-fraction", "0", "expected a number strictly between 0 and 1 (e.g. 0.3 puts 30% of each class in "
                             "the test split), found 0"),
    ("--test-fraction", "1", "expected a number strictly between 0 and 1 (e.g. 0.3 puts 30% of each class in "
                             "the test split), found 1"),
    ("--linear-c", "0", "expected a finite number > 0, found 0"),
    ("--linear-c", "nan", "expected a finite number > 0, found nan"),
])
def test_bad_numeric_options_are_refused_when_parsing(option, value, expected, capsys):
    err = _parse_error(["probe", "enc", "--data", "x.csv", "--out", "r", option, value], capsys)
    assert err == f"domainssl probe: error: argument {option}: {expected}"


@pytest.mark.parametrize("region, expected", [
    ("2,14,0,8", None),                                               # inside: accepted
    ("10,4,0,8", "y0=10, y1=4 is not inside the image's y axis of 16 pixels"),   # reversed
    ("20,30,0,8", "y0=20, y1=30 is not inside the image's y axis of 16 pixels"),  # beyond the image
    ("0,8,8,24", "x0=8, x1=24 is not inside the image's x axis of 16 pixels"),    # partly outside
    ("-4,8,,", "y0=-4, y1=8"),
])
def test_probe_regions_outside_the_image_are_clear_errors(labeled_csv, encoder_dir, tmp_path, capsys,
                                                          region, expected):
    lines = labeled_csv.read_text().splitlines()
    rows = [lines[0] + ",y0,y1,x0,x1"] + [f"{line},0,16,0,16" for line in lines[1:]]
    rows[4] = lines[4] + "," + region  # the fourth data row: line 5 of the file
    labeled_csv.write_text("\n".join(rows) + "\n")
    rc = _probe(encoder_dir, labeled_csv, tmp_path / "r", "--no-random-init")
    err = capsys.readouterr().err
    if expected is None:
        assert rc == 0
        return
    assert rc == 2 and err.count("\n") == 1
    assert f"{labeled_csv}, line 5: region y0=" in err and "3.tif" in err and expected in err
    assert "the image is (2, 16, 16) (CYX)" in err


def test_git_lfs_pointer_weights_are_one_clear_line(labeled_csv, encoder_dir, tmp_path, capsys):
    weights = encoder_dir / "model.safetensors"
    weights.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 99\n")
    assert _probe(encoder_dir, labeled_csv, tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert err == (f"domainssl probe: error: {weights}: a git-lfs pointer file, not the weights; run "
                   "`git lfs pull` in the repository that holds it (or copy the real file)\n")


def test_a_compared_encoder_the_data_does_not_fit_is_named(labeled_csv, encoder_dir, tmp_path, capsys):
    import shutil

    other = tmp_path / "other" / "enc"
    shutil.copytree(encoder_dir, other)
    card = json.loads((other / "encoder.json").read_text())
    card["channel_names"] = [f"X{i}" for i in range(len(card["channel_names"]))]
    stats = card["normalization"].get("stats") or {}
    if "channel_names" in stats:
        stats["channel_names"] = card["channel_names"]
    (other / "encoder.json").write_text(json.dumps(card))
    assert _probe(encoder_dir, labeled_csv, tmp_path / "report", "--compare", other) == 2
    err = capsys.readouterr().err
    # named by the path ending that tells it from the main encoder (tmp_path/enc): "enc" alone would not
    assert "compared encoder other/enc:" in err and "not in the data" in err


@pytest.mark.parametrize("option, default", [
    ("--linear-c", "1.0"), ("--finetune-steps", "100"), ("--finetune-lr", "0.0001"), ("--layer-decay", "0.75"),
    ("--test-fraction", "0.3"), ("--split-seed", "0"), ("--batch-size", "256"), ("--normalization", "card"),
    ("--resize", "crop when the card and the data both have physical pixel spacing"),
])
def test_help_shows_each_default(option, default, capsys):
    import re

    with pytest.raises(SystemExit):
        main(["probe", "--help"])
    text = re.sub(r"\s+", " ", capsys.readouterr().out)
    at = text.index(f" {option} ", text.index("options:"))
    entry = text[at:at + 400]
    nxt = re.search(r" --[a-z-]+ [A-Z{]", entry[len(option) + 2:])  # the next option's own entry
    entry = entry[:len(option) + 2 + nxt.start()] if nxt else entry
    assert f"default {default}" in entry or f"default: {default}" in entry, entry


def test_help_says_which_sets_take_the_split_options(capsys):
    import re

    with pytest.raises(SystemExit):
        main(["probe", "--help"])
    text = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert "a folder without train/test, shared:coffee, shared:jurkat (default 0.3; shared:pneumoniamnist " \
           "keeps its official split)" in text


def test_split_options_reach_a_shared_set(encoder_dir, tmp_path, monkeypatch):
    # --test-fraction / --split-seed were dropped for shared:coffee and shared:jurkat (meta.json kept
    # the 70/30 seed-0 split); the loader must get them and meta.json show the split they make
    import domainssl.transfer.labeled_sets as sets
    from domainssl.transfer.labeled import from_arrays, stratified_split

    seen = []

    def fake_coffee(root=None, seed=0, test_fraction=0.3):
        seen.append((seed, test_fraction))
        rng = np.random.default_rng(0)
        images = rng.normal(100, 20, (20, 2, 16, 16)).astype(np.float32)
        y = np.arange(20) % 2
        return from_arrays(images, y, class_names=["coffee", "noncoffee"], split=stratified_split(y, test_fraction, seed),
                           channel_names=["ch0", "ch1"], name="coffee",
                           info={"split_rule": f"stratified {1 - test_fraction:.0%}/{test_fraction:.0%}, seed {seed}"})

    monkeypatch.setattr(sets, "load_coffee", fake_coffee)
    out = tmp_path / "r"
    assert main(["probe", str(encoder_dir), "--data", "shared:coffee", "--shots", "2", "--seeds", "1",
                 "--no-random-init", "--test-fraction", "0.5", "--split-seed", "7", "--out", str(out)]) == 0
    assert seen == [(7, 0.5)]
    data = json.loads((out / "meta.json").read_text())["data"]
    assert data["split_rule"] == "stratified 50%/50%, seed 7"
    assert data["test"] == {"coffee": 5, "noncoffee": 5} and data["train"] == {"coffee": 5, "noncoffee": 5}
