"""The ND ViT names what is wrong with an input's shape (batch axis, 2D vs 3D, channels)."""

import pytest
import torch

from domainssl.models import build_encoder


@pytest.fixture(scope="module")
def vit2d():
    torch.manual_seed(0)
    return build_encoder("vit2d_tiny", 3, 2, (32, 32), patch_size=8, depth=1).eval()


@pytest.fixture(scope="module")
def vit3d():
    torch.manual_seed(0)
    return build_encoder("vit3d_tiny", 1, 3, (16, 16, 16), patch_size=8, depth=1).eval()


def test_unbatched_image_is_told_to_add_the_batch_axis(vit2d):
    with pytest.raises(ValueError) as err:
        vit2d(torch.zeros(3, 32, 32))
    text = str(err.value)
    assert "expects a batch (B, C, Y, X) (4 dims), got 3 dims (3, 32, 32)" in text
    assert "lacks the batch axis" in text and "x[None]" in text
    assert "expects 3 channels" not in text
    with pytest.raises(ValueError, match="lacks the batch axis"):
        vit2d.forward_tokens(torch.zeros(3, 32, 32))


def test_wrong_channel_count_names_both(vit2d):
    with pytest.raises(ValueError, match=r"expects 3 channels on axis 1 of \(B, C, Y, X\), got 4 in an input of "
                                         r"shape \(2, 4, 32, 32\)"):
        vit2d(torch.zeros(2, 4, 32, 32))


def test_2d_batch_to_3d_vit_says_it_is_3d(vit3d):
    with pytest.raises(ValueError) as err:
        vit3d(torch.zeros(2, 1, 16, 16))
    text = str(err.value)
    assert "is 3D and expects a batch (B, C, Z, Y, X)" in text and "2D batch (B, C, Y, X)" in text
    assert "lacks the batch axis" not in text
    with pytest.raises(ValueError, match=r"got 4 dims \(1, 16, 16, 16\): the input lacks the batch axis"):
        vit3d(torch.zeros(1, 16, 16, 16))


def test_3d_batch_to_2d_vit_says_it_is_2d(vit2d):
    with pytest.raises(ValueError, match=r"is 2D and expects a batch \(B, C, Y, X\).*3D batch.*x\[:, :, z\]"):
        vit2d(torch.zeros(2, 3, 4, 32, 32))


def test_batch_without_channel_axis_for_single_channel_vit():
    enc = build_encoder("vit2d_tiny", 1, 2, (32, 32), patch_size=8, depth=1).eval()
    with pytest.raises(ValueError, match=r"add the channel axis, e.g. x\[:, None\]"):
        enc(torch.zeros(4, 32, 32))
    with torch.no_grad():
        assert tuple(enc(torch.zeros(4, 1, 32, 32)).shape) == (4, enc.embed_dim)
