"""Loading checks the card against what it loads (weights hash, built encoder), and the loaded
encoder's input checks (forward and forward_tokens) say what to do."""

import copy
import json
import pickle
import shutil

import pytest
import torch

from domainssl.models import build_encoder
from domainssl.transfer.card import CardError
from domainssl.transfer.encoder_io import export_encoder, load_encoder, make_card

NAMES = ["B04", "B03", "B08", "B11"]


def _export(tmp_path, name="enc", arch="test_resnet", seed=0):
    torch.manual_seed(seed)
    enc = build_encoder(arch, 4, 2, (32, 32), channel_names=NAMES)
    card = make_card(enc, channel_names=NAMES, spacing=[10.0, 10.0], units=["m", "m"],
                     normalization={"mode": "zscore", "stats": {"channel_names": NAMES, "mean": [1.0] * 4,
                                                                "std": [2.0] * 4}})
    return enc.eval(), export_encoder(enc, tmp_path / name, card)


def _edit_card(out, **changes):
    card = json.loads((out / "encoder.json").read_text())
    card.update(changes)
    (out / "encoder.json").write_text(json.dumps(card))
    return card


# -- make_card / validate_card: in_chans against the channel names ----------------------------------
def test_make_card_refuses_in_chans_that_the_channel_names_cannot_feed():
    enc = build_encoder("test_resnet", 4, 2, (16, 16))
    with pytest.raises(CardError, match=r"in_chans=4 .*channel_names has 2 \['a', 'b'\].*in_chans must be 2"):
        make_card(enc, channel_names=["a", "b"])
    with pytest.raises(CardError, match=r"in_chans=4 .*1 x 3 = 3"):
        make_card(enc, channel_names=["CT"], normalization={"mode": "window", "windows": [[40, 400]] * 3})
    card = make_card(enc, channel_names=["CT"], normalization={"mode": "window", "windows": [[40, 400]] * 4})
    assert card["in_chans"] == 4


def test_card_with_in_chans_not_matching_channel_names_does_not_load(tmp_path):
    _, out = _export(tmp_path)
    _edit_card(out, channel_names=NAMES[:2])  # 4 encoder channels, 2 names: a multiple, still refused
    with pytest.raises(CardError, match=r"in_chans=4 .*channel_names has 2 .*in_chans must be 2"):
        load_encoder(out)


# -- the weights file against the card's sha256 -----------------------------------------------------
def test_swapped_weights_of_the_same_architecture_are_refused(tmp_path):
    enc_a, out_a = _export(tmp_path, "a", seed=0)
    enc_b, out_b = _export(tmp_path, "b", seed=1)
    card_a = json.loads((out_a / "encoder.json").read_text())
    card_b = json.loads((out_b / "encoder.json").read_text())
    shutil.copyfile(out_b / "model.safetensors", out_a / "model.safetensors")
    with pytest.raises(CardError) as err:
        load_encoder(out_a)
    text = str(err.value)
    assert str(out_a / "model.safetensors") in text
    assert card_a["weights"]["sha256"] in text and card_b["weights"]["sha256"] in text
    assert "domainssl export RUN --out DIR" in text and "strict=False" in text
    # strict=False loads them with a warning that says the same
    with pytest.warns(UserWarning, match=card_b["weights"]["sha256"]):
        loose = load_encoder(out_a, strict=False)
    x = torch.randn(2, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loose(x), enc_b(x))
    assert load_encoder(out_a, random_init=True).card["arch"] == "test_resnet"  # no weights, nothing to hash


def test_rewritten_weights_are_refused(tmp_path):
    _, out = _export(tmp_path)
    _, other = _export(tmp_path, "other", seed=3)
    load_encoder(out)
    shutil.copyfile(other / "model.safetensors", out / "model.safetensors")
    with pytest.raises(CardError, match="sha256"):
        load_encoder(out)


def test_card_without_sha256_loads(tmp_path):
    _, out = _export(tmp_path)
    card = json.loads((out / "encoder.json").read_text())
    card["weights"].pop("sha256")
    (out / "encoder.json").write_text(json.dumps(card))
    assert load_encoder(out).card["weights"].get("sha256") is None


# -- the card's top-level keys against the built encoder --------------------------------------------
@pytest.mark.parametrize("key, value, built", [
    ("embed_dim", 999, None),
    ("input_size", [64, 64], [32, 32]),
    ("patch_size", [8, 8], [16, 16]),
])
def test_card_keys_that_disagree_with_the_built_encoder_are_refused(tmp_path, key, value, built):
    enc, out = _export(tmp_path, arch="test_vit")
    built = enc.embed_dim if built is None else built
    _edit_card(out, **{key: value})
    for kw in ({}, {"random_init": True}):
        with pytest.raises(CardError, match=rf"{key}: card {value}, built encoder {built}".replace("[", r"\[")
                           .replace("]", r"\]")) as err:
            load_encoder(out, **kw)
        assert str(out / "encoder.json") in str(err.value) and "domainssl export" in str(err.value)


def test_card_in_chans_that_disagrees_with_the_built_encoder_is_refused(tmp_path):
    _, out = _export(tmp_path)
    _edit_card(out, in_chans=2, channel_names=NAMES[:2])  # consistent card, but build makes 4 channels
    with pytest.raises(CardError, match=r"in_chans: card 2, built encoder 4"):
        load_encoder(out)


def test_card_spatial_dims_that_disagree_with_the_built_encoder_are_refused(tmp_path):
    _, out = _export(tmp_path)
    _edit_card(out, spatial_dims=3, input_size=[32, 32, 32], spacing=[1.0] * 3, units=["px"] * 3)
    with pytest.raises(CardError, match=r"spatial_dims: card 3, built encoder 2.*input_size: card \[32, 32, 32\], "
                                        r"built encoder \[32, 32\]"):
        load_encoder(out)


# -- input checks: forward_tokens, batch axis, 2D batch to a 3D encoder, CT windows -------------------
def test_forward_tokens_of_a_loaded_encoder_is_checked_and_casts_float64(tmp_path):
    import numpy as np

    enc, out = _export(tmp_path, arch="test_vit")
    loaded = load_encoder(out)
    with pytest.raises(ValueError, match=r"expects 4 channels \(B04, B03, B08, B11\).*found 3"):
        loaded.forward_tokens(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"got 3 dims \(4, 32, 32\): the input lacks the batch axis"):
        loaded.forward_tokens(torch.zeros(4, 32, 32))
    array = np.random.default_rng(0).normal(size=(2, 4, 32, 32))
    with torch.no_grad():
        tokens = loaded.forward_tokens(torch.from_numpy(array))  # float64
        assert tokens.dtype == torch.float32 and tuple(tokens.shape) == (2, 4, enc.embed_dim)
        torch.testing.assert_close(tokens, enc.forward_tokens(torch.from_numpy(array).float()))
    assert loaded.is_vit
    # a copy (fine-tuning deep-copies the encoder) checks with and runs its own weights
    twin = copy.deepcopy(loaded)
    with torch.no_grad():
        for p in twin.parameters():
            p.add_(1.0)
        assert not torch.allclose(twin.forward_tokens(torch.from_numpy(array)), tokens)
        torch.testing.assert_close(loaded.forward_tokens(torch.from_numpy(array)), tokens)
    with pytest.raises(ValueError, match="expects 4 channels"):
        twin.forward_tokens(torch.zeros(2, 3, 32, 32))
    restored = pickle.loads(pickle.dumps(loaded))
    with torch.no_grad():
        torch.testing.assert_close(restored.forward_tokens(torch.from_numpy(array)), tokens)
    with pytest.raises(ValueError, match="expects 4 channels"):
        restored.forward_tokens(torch.zeros(2, 3, 32, 32))


def test_cnn_keeps_forward_tokens_none(tmp_path):
    _, out = _export(tmp_path)
    loaded = load_encoder(out)
    assert loaded.forward_tokens is None and not loaded.is_vit


def test_2d_batch_to_a_3d_encoder_says_the_encoder_is_3d(tmp_path):
    torch.manual_seed(0)
    enc3d = build_encoder("vit3d_tiny", 1, 3, (16, 16, 16), patch_size=8, depth=1)
    loaded = load_encoder(export_encoder(enc3d, tmp_path / "enc3d", make_card(enc3d, channel_names=["CT"])))
    with pytest.raises(ValueError) as err:
        loaded(torch.zeros(2, 1, 16, 16))
    text = str(err.value)
    assert "encoder (pretrained on (1, 16, 16, 16)) is 3D and expects a batch (B, C, Z, Y, X)" in text and "2D batch (B, C, Y, X)" in text
    assert "add the batch axis" not in text
    with pytest.raises(ValueError, match=r"got 4 dims \(1, 16, 16, 16\): the input lacks the batch axis; add it, e.g. x\[None\]"):
        loaded(torch.zeros(1, 16, 16, 16))  # one volume without its batch axis
    with pytest.raises(ValueError, match=r"is 3D and expects a batch \(B, C, Z, Y, X\).*looks like a 2D batch"):
        loaded.forward_tokens(torch.zeros(2, 1, 16, 16))


def test_2d_encoder_given_a_3d_batch_says_so(tmp_path):
    _, out = _export(tmp_path)
    with pytest.raises(ValueError, match=r"is 2D and expects a batch \(B, C, Y, X\).*3D batch"):
        load_encoder(out)(torch.zeros(2, 4, 8, 32, 32))


def test_raw_hu_channel_to_a_window_encoder_says_to_apply_the_windows(tmp_path):
    windows = [[40, 400], [-600, 1500], [400, 1800]]
    torch.manual_seed(0)
    enc = build_encoder("test_resnet", 3, 2, (32, 32))
    card = make_card(enc, channel_names=["CT"], normalization={"mode": "window", "windows": windows})
    loaded = load_encoder(export_encoder(enc, tmp_path / "ct", card))
    with pytest.raises(ValueError) as err:
        loaded(torch.zeros(2, 1, 32, 32))  # HU, not windowed
    text = str(err.value)
    assert "expects 3 channels (CT[L40,W400], CT[L-600,W1500], CT[L400,W1800])" in text and "found 1" in text
    assert "domainssl.transforms.ct_windows" in text and "domainssl.transfer.prepare_input(enc, image)" in text
    assert "select or map" not in text
    # the advice, as written, gives an input the encoder takes
    from domainssl.transforms import ct_windows

    hu = torch.randn(2, 1, 32, 32) * 500
    x = torch.stack([ct_windows(img, loaded.card["normalization"]["windows"]) for img in hu])
    with torch.no_grad():
        assert tuple(loaded(x).shape) == (2, loaded.card["embed_dim"])
    # two data channels into a 3-channel window encoder are not raw HU: the usual advice
    with pytest.raises(ValueError, match="select or map the channels"):
        loaded(torch.zeros(2, 2, 32, 32))


# -- 2.5D encoders (slices stacked as channels) keep exporting --------------------------------------
@pytest.mark.parametrize("normalise", [{"mode": "none"}, {"mode": "window", "windows": [[40, 400], [0, 2000]]}])
def test_slab_encoder_from_pretraining_views_exports_and_loads(tmp_path, normalise):
    # pretraining builds the encoder with the views' channel names (2D views of 3D data, 3 slices
    # as channels, CT windows); the card keeps the data channels
    from dataclasses import asdict

    from domainssl.transfer.card import encoder_input_names, slab_depth
    from domainssl.transforms.plan import ViewPlan, resolve_config

    config = resolve_config("ct", 2, overrides={"slice_channels": 3, "normalise": normalise})
    plan = ViewPlan(config, "single", 2, ["CT"])
    enc_names = plan.output_channel_names(3)
    assert len(enc_names) == 3 * (2 if normalise["mode"] == "window" else 1)
    enc = build_encoder("test_resnet", len(enc_names), 2, (16, 16), channel_names=enc_names)
    card = make_card(enc, channel_names=["CT"], normalization=asdict(config.normalise))
    assert slab_depth(card) == 3 and encoder_input_names(card) == enc_names
    loaded = load_encoder(export_encoder(enc, tmp_path / "slab", card))
    assert tuple(loaded(torch.zeros(1, len(enc_names), 16, 16)).shape) == (1, loaded.card["embed_dim"])
    # the same channel count with names that are not this data's slabs is refused
    other = build_encoder("test_resnet", len(enc_names), 2, (16, 16),
                          channel_names=[f"x{i}" for i in range(len(enc_names))])
    with pytest.raises(CardError, match=rf"in_chans={len(enc_names)} .*channel_names has 1"):
        make_card(other, channel_names=["CT"], normalization=asdict(config.normalise))
