"""The few-shot protocol, probes, fine-tuning, input preparation and reports."""

import json

import numpy as np
import pytest

from domainssl.transfer.card import CardMismatchError, read_card
from domainssl.transfer.fewshot import Candidate, parse_shots, run_fewshot, sample_shots, score
from domainssl.transfer.labeled import from_arrays
from domainssl.transfer.preprocess import make_input_spec, to_input
from domainssl.transfer.probes import knn_predict, linear_probe


def _separable(n=40, d=8, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    x = rng.normal(size=(n, d))
    x[np.arange(n), y] += 4.0  # each class points along its own axis (cosine and linear both see it)
    return x, y


def test_parse_and_sample_shots():
    assert parse_shots("1, 5,all") == [1, 5, "all"]
    with pytest.raises(ValueError, match="positive"):
        parse_shots("0")
    labels = np.array([0] * 10 + [1] * 3)
    train = np.arange(13)
    picked = sample_shots(labels, train, 5, seed=1)
    assert np.sum(labels[picked] == 0) == 5 and np.sum(labels[picked] == 1) == 3
    assert (sample_shots(labels, train, 5, 1) == picked).all()
    assert not all((sample_shots(labels, train, 5, s) == picked).all() for s in range(2, 6))
    assert len(sample_shots(labels, train, "all", 0)) == 13


def test_probes_separate_separable_features():
    x, y = _separable()
    assert (linear_probe(x[::2], y[::2], x[1::2]) == y[1::2]).mean() > 0.9
    assert (knn_predict(x[::2], y[::2], x[1::2], k=3) == y[1::2]).mean() > 0.9
    one_each = np.array([0, 39])
    assert (knn_predict(x[one_each], y[one_each], x, k=50) == y).mean() > 0.8  # k capped at 1 per class


def test_score_in_percent():
    s = score(np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0]))
    assert s["accuracy"] == 75.0 and s["balanced_accuracy"] == 50.0 and 0 < s["macro_f1"] < 50


def test_protocol_rows_and_pairing():
    x, y = _separable(60)
    split = np.where(np.arange(60) % 3 == 0, "test", "train")
    ds = from_arrays(np.zeros((60, 1, 4, 4)), y, split=split)
    good = Candidate("good", features=x)
    noise = Candidate("noise", features=np.random.default_rng(1).normal(size=x.shape))
    rows = run_fewshot([good, noise], ds, shots=[1, 5, "all"], seeds=3, modes=["linear", "knn"], knn_k=3,
                       progress=False)
    assert len(rows) == 2 * 2 * 3
    for key in ("encoder", "mode", "shots", "accuracy_mean", "accuracy_std", "balanced_accuracy_mean",
                "macro_f1_mean"):
        assert key in rows[0]
    by = {(r["encoder"], r["mode"], r["shots"]): r for r in rows}
    assert by[("good", "linear", 5)]["accuracy_mean"] > by[("noise", "linear", 5)]["accuracy_mean"] + 20
    assert by[("good", "linear", 1)]["n_train"] == 2 and by[("good", "linear", "all")]["n_train"] == 40
    assert by[("good", "linear", "all")]["seeds"] == 1


def test_input_spec_applies_card_normalisation_and_resize(encoder_dir, striped):
    images, labels = striped
    ds = from_arrays(images[:, :, :12, :12], labels, channel_names=["ch1", "ch0"]).with_split(0.25)
    card = read_card(encoder_dir)
    spec = make_input_spec(card, ds)
    assert spec.channel_idx == (1, 0) and spec.input_size == (16, 16) and spec.resize == "resize"
    x = to_input(images[0, :, :12, :12], spec)
    assert tuple(x.shape) == (2, 16, 16)
    assert abs(float(x.mean())) < 1.0  # (v - 100) / std puts the stripes around 0
    # data channel 0 is named ch1: it feeds encoder channel 1, standardised with ch1's std (40)
    raw = images[0, :, :12, :12]
    assert float(x[1].std()) == pytest.approx(float(((raw[0] - 100) / 40).std()), rel=0.2)
    assert float(x[0].std()) == pytest.approx(float(((raw[1] - 100) / 20).std()), rel=0.2)
    data_spec = make_input_spec(card, ds, normalization="data")
    assert data_spec.stats["mean"][0] == pytest.approx(100, abs=5)
    crop = make_input_spec(card, ds, resize="crop")
    assert tuple(to_input(images[0, :, :12, :12], crop).shape) == (2, 16, 16)


def test_input_spec_refuses_other_channels_and_scales(encoder_dir, striped):
    images, labels = striped
    card = read_card(encoder_dir)
    three = from_arrays(np.concatenate([images, images[:, :1]], 1), labels,
                        channel_names=["red", "green", "blue"]).with_split()
    with pytest.raises(CardMismatchError, match="channel-map"):
        make_input_spec(card, three)
    assert make_input_spec(card, three, channel_map="2,0").channel_idx == (2, 0)
    scaled = from_arrays(images / 10000.0, labels, channel_names=["ch0", "ch1"]).with_split()
    with pytest.raises(CardMismatchError, match="different scale"):
        make_input_spec(card, scaled)
    assert make_input_spec(card, scaled, normalization="data").normalise["mode"] == "zscore"


def test_window_card_expands_channels(striped):
    import torch

    from domainssl.models import build_encoder
    from domainssl.transfer.encoder_io import make_card

    enc = build_encoder("test_resnet", 2, 2, (16, 16))
    card = make_card(enc, channel_names=["CT"], normalization={"mode": "window", "windows": [[40, 400], [0, 2000]]})
    images, labels = striped
    ds = from_arrays(images[:, :1], labels, channel_names=["CT"]).with_split()
    x = to_input(images[0, :1], make_input_spec(card, ds))
    assert tuple(x.shape) == (2, 16, 16) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert torch.allclose(x[1], torch.from_numpy((images[0, 0] + 1000) / 2000).clamp(0, 1), atol=1e-5)


def test_compare_encoders_on_files_with_cache(encoder_dir, tiff_csv, tmp_path):
    from domainssl.transfer.evaluate import compare_encoders
    from domainssl.transfer.labeled import load_labeled
    from domainssl.transfer.report import format_table, plot_results, write_results

    ds = load_labeled(tiff_csv)
    cache = tmp_path / "cache"
    rows, meta = compare_encoders(encoder_dir, ds, shots=[1, 2], seeds=2, modes=["linear", "knn", "finetune"],
                                  finetune_kw={"steps": 3, "batch_size": 4}, cache_dir=cache, progress=False)
    assert {r["encoder"] for r in rows} == {"pretrained", "random_init"}
    assert {r["mode"] for r in rows} == {"linear", "knn", "finetune"}
    assert all(0 <= r["accuracy_mean"] <= 100 for r in rows)
    assert len(list(cache.glob("*.npy"))) == 2
    rows2, _ = compare_encoders(encoder_dir, ds, shots=[1, 2], seeds=2, modes=["linear"], cache_dir=cache,
                                progress=False)
    lin = [r for r in rows if r["mode"] == "linear"]
    assert [r["accuracy_mean"] for r in rows2] == [r["accuracy_mean"] for r in lin]
    paths = write_results(rows, tmp_path / "report", meta)
    assert json.loads(paths["json"].read_text())[0]["encoder"] == "pretrained"
    assert paths["csv"].read_text().startswith("encoder,mode,shots")
    png = plot_results(rows, tmp_path / "report" / "results.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    table = format_table(rows)
    assert "pretrained" in table and "k=2" in table


def test_finetune_layer_decay_groups():
    from domainssl.models import build_encoder
    from domainssl.transfer.finetune import param_groups

    vit = build_encoder("test_vit", 1, 2, (16, 16))
    lrs = sorted({g["lr"] for g in param_groups(vit, 1.0, layer_decay=0.5)})
    assert len(lrs) >= 3 and lrs[-1] == 1.0 and lrs[0] < 0.3
    cnn = build_encoder("test_resnet", 1, 2, (16, 16))
    assert {g["lr"] for g in param_groups(cnn, 1.0, layer_decay=0.5)} == {1.0}


def test_finetune_learns_an_easy_task(striped):
    import torch

    from domainssl.models import build_encoder
    from domainssl.transfer.finetune import finetune_predict

    images, labels = striped
    x = torch.from_numpy((images - 100.0) / 20.0)
    torch.manual_seed(0)
    enc = build_encoder("test_resnet", 2, 2, (16, 16))
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    pred = finetune_predict(enc, x[::2], labels[::2], x[1::2], 2, steps=40, batch_size=8, lr=1e-3, head_lr=1e-2)
    assert (pred == labels[1::2]).mean() >= 0.75
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())  # the original is untouched


def test_one_training_class_is_refused():
    from domainssl.transfer.labeled import LabeledDataError

    x, y = _separable(20)
    split = np.where(y == 0, "train", "test")  # class 1 only in test: a constant probe would score 0..100 %
    ds = from_arrays(np.zeros((20, 1, 4, 4)), y, class_names=["cat", "dog"], split=split)
    with pytest.raises(LabeledDataError, match=r"training split has only class 'cat' \(10 images\).*at least 2"):
        run_fewshot([Candidate("c", features=x)], ds, shots=[1], seeds=1, progress=False)
    with pytest.raises(ValueError, match="at least 2 classes"):
        linear_probe(x[:10], y[:10], x[10:])  # used to return a constant prediction
    with pytest.raises(ValueError, match="at least 2 classes"):
        knn_predict(x[:10], y[:10], x[10:])


def test_classes_smaller_than_k_warn_once_per_k_and_rows_report_what_was_used():
    import warnings

    from domainssl.transfer.fewshot import FewShotWarning

    rng = np.random.default_rng(0)
    y = np.array([0] * 14 + [1] * 6 + [2] * 4)  # train: 10, 3 and 3 images; test: 4, 3, 1
    split = np.array(["train"] * 10 + ["test"] * 4 + ["train"] * 3 + ["test"] * 3 + ["train"] * 3 + ["test"])
    ds = from_arrays(np.zeros((24, 1, 4, 4)), y, class_names=["a", "b", "c"], split=split)
    cand = Candidate("c", features=rng.normal(size=(24, 4)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = run_fewshot([cand], ds, shots=[2, 5, 100, "all"], seeds=2, modes=["linear", "knn"], progress=False)
    texts = [str(w.message) for w in caught if issubclass(w.category, FewShotWarning)]
    assert len(texts) == 2  # one per k that some class cannot fill, not one per mode or seed
    assert "k=5: class(es) {'b': 3, 'c': 3} have fewer training images than 5" in texts[0]
    assert "k=100 is above every class's training count: at most 10 labels per class" in texts[1]
    by = {(r["mode"], r["shots"]): r for r in rows}
    assert by[("linear", 2)]["labels_per_class"] == 2.0
    assert by[("linear", 5)]["labels_per_class"] == pytest.approx(11 / 3)  # 5 + 3 + 3, not 5
    assert by[("knn", 100)]["n_train"] == 16 and by[("linear", "all")]["n_train"] == 16


def test_class_only_in_test_split_is_warned_about():
    from domainssl.transfer.fewshot import FewShotWarning

    x, y = _separable(20)
    y = y.copy()
    y[[0, 1]] = 2  # class "c": two test images, no training image
    split = np.where(np.arange(20) % 4 == 0, "test", "train")
    split[[0, 1]] = "test"
    ds = from_arrays(np.zeros((20, 1, 4, 4)), y, class_names=["a", "b", "c"], split=split)
    with pytest.warns(FewShotWarning, match=r"class\(es\) \{'c': 2\} \(test images\) have no training images"):
        rows = run_fewshot([Candidate("c", features=x)], ds, shots=["all"], seeds=1, progress=False)
    assert rows[0]["labels_per_class"] == pytest.approx(len(np.flatnonzero(split == "train")) / 2)
