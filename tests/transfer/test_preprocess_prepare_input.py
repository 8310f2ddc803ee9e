"""`prepare_input`: the card's preprocessing applied to one's own arrays, one image or a batch."""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from domainssl.transfer import prepare_input
from domainssl.transfer.card import CardMismatchError, read_card
from domainssl.transfer.labeled import from_arrays
from domainssl.transfer.preprocess import make_input_spec, prepare_inputs

MEAN, STD = np.array([100.0, 100.0]), np.array([20.0, 40.0])   # the encoder_dir fixture's card


def _image(seed=0, shape=(2, 16, 16)):
    return np.random.default_rng(seed).normal(100, 20, shape).astype(np.float32)


def test_one_image_is_normalised_with_the_cards_statistics(encoder_dir):
    image = _image()
    out = prepare_input(encoder_dir, image)
    assert out.dtype == torch.float32 and tuple(out.shape) == (2, 16, 16)
    expected = (image - MEAN[:, None, None]) / STD[:, None, None]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_encoder_card_and_directory_give_the_same_input_and_the_encoder_takes_it(encoder_dir):
    from domainssl import load_encoder

    enc = load_encoder(encoder_dir)
    image = _image(1)
    from_dir = prepare_input(encoder_dir, image)
    assert torch.equal(prepare_input(enc, image), from_dir)
    assert torch.equal(prepare_input(read_card(encoder_dir), torch.from_numpy(image)), from_dir)
    with torch.no_grad():
        assert tuple(enc(from_dir[None]).shape) == (1, enc.card["embed_dim"])
    with pytest.raises(TypeError, match="card_or_encoder must be an encoder card"):
        prepare_input(3, image)


def test_a_batch_matches_the_probes_preprocessing(encoder_dir):
    # the same spec and the same per-image code as `domainssl probe` (prepare_inputs)
    card = read_card(encoder_dir)
    images = _image(2, (5, 2, 24, 20))
    out = prepare_input(card, images)
    assert tuple(out.shape) == (5, 2, 16, 16)
    labeled = from_arrays(images, [0, 1, 0, 1, 0], channel_names=["ch0", "ch1"])
    torch.testing.assert_close(out, prepare_inputs(labeled, make_input_spec(card, labeled), progress=False),
                               rtol=0, atol=0)
    torch.testing.assert_close(prepare_input(card, images[3]), out[3], rtol=0, atol=0)


def test_channels_are_matched_by_name_and_nan_is_filled_as_in_pretraining(encoder_dir):
    image = _image(3)
    image[:, :3] = np.nan
    out = prepare_input(encoder_dir, image)
    assert out[:, :3].abs().max().item() == 0.0          # the value that normalises to 0
    swapped = prepare_input(encoder_dir, image[::-1].copy(), channel_names=["ch1", "ch0"])
    assert torch.equal(swapped, out)
    mask = np.ones((16, 16), bool)
    mask[-2:] = False
    masked = prepare_input(encoder_dir, image, mask=mask)
    assert masked[:, -2:].abs().max().item() == 0.0 and torch.equal(masked[:, 3:-2], out[:, 3:-2])


def test_spacing_resamples_to_the_cards_spacing_as_the_probe_does(encoder_dir):
    card = dict(read_card(encoder_dir), spacing=[1.0, 1.0], units=["mm", "mm"])
    image = _image(4, (2, 40, 40))
    out = prepare_input(card, image, spacing=[0.5, 0.5])          # units default to the card's
    labeled = from_arrays(image[None], [0], channel_names=["ch0", "ch1"], spacing=[0.5, 0.5], units=["mm", "mm"])
    spec = make_input_spec(card, labeled)
    assert spec.zoom == (0.5, 0.5) and spec.resize == "crop"
    torch.testing.assert_close(out, prepare_inputs(labeled, spec, progress=False)[0], rtol=0, atol=0)
    # without spacing the whole image is interpolated to the input size (a card may warn that
    # the physical scale cannot be checked then)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert tuple(prepare_input(card, image).shape) == (2, 16, 16)


@pytest.mark.parametrize("array, kwargs, error, message", [
    (np.zeros((2, 2, 2, 16, 16)), {}, ValueError, r"array of shape \(2, 2, 2, 16, 16\) for a 2D encoder; give "
                                                  r"\(C, Y, X\), \(N, C, Y, X\) or \(Y, X\)"),
    (np.full((2, 16, 16), 0.01), {}, CardMismatchError, r"ch0"),          # another unit scale
    (np.full((3, 16, 16), 100.0), {}, CardMismatchError, r"data has 3 channels"),
    (np.full((2, 16, 16), 100.0), {"channel_names": ["a"]}, ValueError, r"1 channel names \['a'\] for an array "
                                                                        r"with 2 channel"),
    (np.full((2, 16, 16), 100.0), {"units": ["mm", "mm"]}, ValueError, r"units \['mm', 'mm'\] without spacing"),
    (np.full((2, 16, 16), 100.0), {"mask": np.ones((8, 8), bool)}, ValueError, r"mask of shape \(8, 8\)"),
])
def test_input_that_does_not_fit_is_refused_clearly(encoder_dir, array, kwargs, error, message):
    with pytest.raises(error, match=message):
        prepare_input(encoder_dir, array, **kwargs)


def test_import_domainssl_stays_light_and_readme_documents_prepare_input():
    code = ("import sys, domainssl, domainssl.transfer; domainssl.transfer.prepare_input; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "domainssl.transfer.prepare_input(" in readme
