"""Export an encoder (safetensors + card) and load it back: domainssl, timm alone, key reports."""

import json

import pytest
import torch

from domainssl.models import build_encoder
from domainssl.transfer.card import CardError, read_card
from domainssl.transfer.encoder_io import (WeightsMismatchError, export_encoder, load_encoder,
                                           make_card)

NAMES = ["B04", "B03", "B08", "B11"]


def _export(tmp_path, arch="test_resnet", in_chans=4, size=(32, 32)):
    torch.manual_seed(0)
    enc = build_encoder(arch, in_chans, 2, size, channel_names=NAMES[:in_chans])
    card = make_card(enc, channel_names=NAMES[:in_chans], spacing=[10.0, 10.0], units=["m", "m"],
                     normalization={"mode": "zscore", "stats": {"channel_names": NAMES[:in_chans],
                                                                "mean": [1.0] * in_chans, "std": [2.0] * in_chans}},
                     method={"name": "simclr", "temperature": 0.1}, data={"images": 3, "patches": 12},
                     metrics={"train/loss": 4.2, "monitor/embedding_std": 0.5})
    out = export_encoder(enc, tmp_path / "enc", card)
    return enc.eval(), out


@pytest.mark.parametrize("arch", ["test_resnet", "test_vit"])
def test_export_then_load_gives_same_features(tmp_path, arch):
    enc, out = _export(tmp_path, arch)
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "encoder.json", "README.md"}
    loaded = domainssl_load(out)
    assert not loaded.training
    x = torch.randn(2, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), enc(x))
    card = loaded.card
    for key in ("arch", "spatial_dims", "in_chans", "channel_names", "input_size", "patch_size", "spacing",
                "units", "normalization", "embed_dim", "method", "data", "version", "metrics"):
        assert key in card
    assert card["embed_dim"] == enc.embed_dim and card["in_chans"] == 4 and card["input_size"] == [32, 32]
    assert card["weights"]["key_format"] == "timm" and len(card["weights"]["sha256"]) == 64
    assert card["metrics"]["train/loss"] == 4.2


def domainssl_load(path, **kw):
    import domainssl

    return domainssl.load_encoder(path, **kw)


@pytest.mark.parametrize("arch", ["test_resnet", "test_vit"])
def test_timm_one_liner_loads_the_same_weights(tmp_path, arch):
    import timm

    enc, out = _export(tmp_path, arch)
    card = read_card(out)
    weights = str(out / "model.safetensors")
    # The call the card's README documents, evaluated as written there.
    model = eval(card_one_liner(card, weights), {"timm": timm})
    model.eval()
    x = torch.randn(2, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), enc(x))
    assert f"pretrained_cfg_overlay=dict(file='ENCODER_DIR/model.safetensors'" in (out / "README.md").read_text()


def card_one_liner(card, weights):
    from domainssl.transfer.card import timm_one_liner

    return timm_one_liner(card, weights)


def test_3d_encoder_round_trip(tmp_path):
    torch.manual_seed(0)
    enc = build_encoder("vit3d_tiny", 1, 3, (16, 16, 16), patch_size=8, depth=1)
    card = make_card(enc, channel_names=["CT"], spacing=[1.5] * 3, units=["mm"] * 3,
                     normalization={"mode": "window", "windows": [[0.0, 2000.0]]})
    out = export_encoder(enc, tmp_path / "enc3d", card)
    loaded = load_encoder(out)
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), enc.eval()(x))
    assert loaded.card["weights"]["key_format"] == "domainssl" and "timm" not in loaded.card
    assert loaded.card["patch_size"] == [8, 8, 8]


def test_missing_and_unexpected_keys_are_reported(tmp_path):
    from safetensors.torch import load_file, save_file

    _, out = _export(tmp_path)
    weights = out / "model.safetensors"
    state = load_file(str(weights))
    dropped = sorted(state)[0]
    state.pop(dropped)
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(weights))
    with pytest.raises(WeightsMismatchError) as err:
        load_encoder(out)
    assert dropped.split(".")[-1] in str(err.value) and "extra.weight" in str(err.value)
    with pytest.warns(UserWarning, match="extra.weight"):
        enc = load_encoder(out, strict=False)
    assert not enc.training


def test_shape_mismatch_is_reported(tmp_path):
    _, out = _export(tmp_path)
    card = json.loads((out / "encoder.json").read_text())
    card["build"]["in_chans"] = 3  # weights were saved for 4 channels
    card["build"]["channel_names"] = NAMES[:3]
    card["in_chans"], card["channel_names"] = 3, NAMES[:3]  # a card consistent with its build
    (out / "encoder.json").write_text(json.dumps(card))
    with pytest.raises(WeightsMismatchError, match="shape mismatch"):
        load_encoder(out)


def test_random_init_and_missing_weights(tmp_path):
    enc, out = _export(tmp_path)
    rnd = load_encoder(out, random_init=True)
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(rnd(x), enc(x))
    (out / "model.safetensors").unlink()
    with pytest.raises(CardError, match="model.safetensors"):
        load_encoder(out)


def test_unbuildable_card_is_a_card_error(tmp_path):
    _, out = _export(tmp_path)
    card = json.loads((out / "encoder.json").read_text())
    card["build"]["in_chans"] = 3  # 4 channel names for 3 channels
    (out / "encoder.json").write_text(json.dumps(card))
    with pytest.raises(CardError, match="cannot build"):
        load_encoder(out)


@pytest.mark.parametrize("content, expected", [
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 1234\n", "git lfs pull"),
    (b"\x08\x00", "export the encoder again"),
    (None, "truncated or corrupt"),
])
def test_unreadable_weights_name_the_file_and_what_to_do(tmp_path, content, expected):
    _, out = _export(tmp_path)
    weights = out / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:len(data) // 2] if content is None else content)  # None: truncated copy
    with pytest.raises(WeightsMismatchError) as err:
        load_encoder(out)
    assert str(weights) in str(err.value) and expected in str(err.value)
    assert load_encoder(out, random_init=True).card["arch"] == "test_resnet"  # the card alone still builds


@pytest.mark.parametrize("arch", ["test_resnet", "test_vit"])
def test_loaded_encoder_casts_float64_input_to_its_weights_dtype(tmp_path, arch):
    import numpy as np

    enc, out = _export(tmp_path, arch)
    loaded = load_encoder(out)
    array = np.random.default_rng(0).normal(size=(2, 4, 32, 32))
    with torch.no_grad():
        feats = loaded(torch.from_numpy(array))  # float64, torch.from_numpy's default
        assert feats.dtype == torch.float32
        torch.testing.assert_close(feats, enc(torch.from_numpy(array).float()))
        double = load_encoder(out).to(torch.float64)  # the dtype follows the module's weights
        assert double(torch.from_numpy(array).float()).dtype == torch.float64


def test_loaded_encoder_explains_wrong_input_shapes(tmp_path):
    _, out = _export(tmp_path)
    loaded = load_encoder(out)
    with pytest.raises(ValueError, match=r"expects 4 channels \(B04, B03, B08, B11\).*found 3"):
        loaded(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"expects a batch \(B, C, Y, X\) \(4 dims\), got 3 dims.*x\[None\]"):
        loaded(torch.zeros(4, 32, 32))
    with pytest.raises(ValueError, match="floating-point input normalised.*zscore.*uint8"):
        loaded(torch.zeros(2, 4, 32, 32, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor, found ndarray"):
        loaded(torch.zeros(2, 4, 32, 32).numpy())
    torch.manual_seed(0)
    enc3d = build_encoder("vit3d_tiny", 1, 3, (16, 16, 16), patch_size=8, depth=1)
    out3d = export_encoder(enc3d, tmp_path / "enc3d", make_card(enc3d, channel_names=["CT"]))
    with pytest.raises(ValueError, match=r"\(B, C, Z, Y, X\) \(5 dims\), got 4 dims \(1, 16, 16, 16\)"):
        load_encoder(out3d)(torch.zeros(1, 16, 16, 16))  # no batch axis: not "expects 1 channels"
