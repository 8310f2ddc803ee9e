"""build_encoder: 2D timm (any channels), 3D ViT (anisotropic patches), MONAI 3D ResNet."""

import pytest
import torch

from domainssl.models import build_encoder

CASES = [
    ("resnet18", 5, 2, (32, 32), {}),
    ("convnext_atto", 2, 2, (32, 32), {}),
    ("vit_tiny_patch16_224", 4, 2, (32, 48), {"depth": 1}),
    ("vit3d_tiny", 1, 3, (8, 32, 32), {"patch_size": (4, 16, 16), "depth": 1}),
    ("vit2d_tiny", 6, 2, (16, 16), {"patch_size": 8, "depth": 1,
                                     "channel_groups": [[0, 1, 2], [3, 4, 5]]}),
    ("resnet3d_10", 2, 3, (16, 16, 16), {"widen_factor": 0.25}),
]


@pytest.mark.parametrize("arch,c,d,size,kw", CASES, ids=[c[0] for c in CASES])
def test_encoder_contract(arch, c, d, size, kw):
    enc = build_encoder(arch, c, d, size, **kw).eval()
    x = torch.randn(2, c, *size)
    with torch.no_grad():
        f = enc(x)
    assert f.shape == (2, enc.embed_dim)
    assert enc.in_chans == c and enc.spatial_dims == d and enc.arch == arch
    # config is plain JSON and rebuilds the same architecture
    import json

    cfg = json.loads(json.dumps(enc.config))
    again = build_encoder(**cfg).eval()
    again.load_state_dict(enc.state_dict())
    with torch.no_grad():
        assert torch.allclose(again(x), f, atol=1e-5)
    if enc.patch_size is None:
        assert enc.forward_tokens is None and not enc.is_vit
    else:
        n = 1
        for s, p in zip(size, enc.patch_size):
            n *= s // p
        n *= len(kw.get("channel_groups") or [0])
        with torch.no_grad():
            tok = enc.forward_tokens(x)
            split = enc.pool_tokens(enc.encode_tokens(enc.embed_patches(x)))
        assert tok.shape == (2, n, enc.embed_dim)
        assert torch.allclose(split, f, atol=1e-5)


def test_timm_state_dict_loads_into_timm():
    import timm

    enc = build_encoder("resnet18", 7, 2, (32, 32))
    model = timm.create_model("resnet18", pretrained=False, num_classes=0, in_chans=7)
    model.load_state_dict(enc.timm_state_dict())  # strict: timm's own keys
    x = torch.randn(1, 7, 32, 32)
    assert torch.allclose(model.eval()(x), enc.eval()(x))


def test_vit_accepts_other_sizes():
    # DINO's local crops: smaller inputs than input_size, 2D timm and 3D ours.
    enc = build_encoder("vit_tiny_patch16_224", 1, 2, (64, 64), depth=1)
    assert enc(torch.randn(1, 1, 32, 32)).shape == (1, 192)
    enc3 = build_encoder("vit3d_tiny", 1, 3, (16, 32, 32), patch_size=(4, 8, 8), depth=1)
    assert enc3.forward_tokens(torch.randn(1, 1, 8, 16, 16)).shape == (1, 2 * 2 * 2, 192)


def test_channel_names_and_errors():
    enc = build_encoder("resnet18", 2, 2, (32, 32), channel_names=["B04", "B08"])
    assert enc.channel_names == ["B04", "B08"] and enc.config["channel_names"] == ["B04", "B08"]
    with pytest.raises(ValueError, match="channel names"):
        build_encoder("resnet18", 3, 2, (32, 32), channel_names=["a"])
    with pytest.raises(ValueError, match="unknown timm"):
        build_encoder("no_such_net", 3, 2, (32, 32))
    with pytest.raises(ValueError, match="2D"):
        build_encoder("resnet18", 1, 3, (8, 8, 8))
    with pytest.raises(ValueError, match="channel_groups"):
        build_encoder("vit2d_tiny", 3, 2, (16, 16), patch_size=8, channel_groups=[[0, 1]])
