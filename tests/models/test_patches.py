"""patchify / unpatchify / random masking: exact, any dims, any channels."""

import pytest
import torch

from domainssl.models.patches import gather_tokens, num_kept, patchify, random_masking, unpatchify


@pytest.mark.parametrize("shape,patch", [
    ((2, 3, 8, 12), (4, 4)),
    ((2, 1, 8, 16, 16), (4, 8, 8)),       # anisotropic 3D
    ((1, 5, 4, 8, 8), (2, 4, 2)),
    ((3, 13, 6, 6), (3, 2)),
])
def test_patchify_roundtrip_exact(shape, patch):
    x = torch.randn(shape)
    t = patchify(x, patch)
    grid = [s // p for s, p in zip(shape[2:], patch)]
    assert t.shape == (shape[0], torch.tensor(grid).prod().item(),
                       torch.tensor(patch).prod().item() * shape[1])
    assert torch.equal(unpatchify(t, patch, grid, shape[1]), x)


def test_patchify_token_content_3d():
    # Token (iz, iy, ix) holds exactly the voxels of that patch, channel last.
    x = torch.arange(2 * 4 * 4 * 6, dtype=torch.float32).reshape(1, 2, 4, 4, 6)
    t = patchify(x, (2, 2, 3))
    grid = (2, 2, 2)
    iz, iy, ix = 1, 0, 1
    idx = (iz * grid[1] + iy) * grid[2] + ix
    block = x[0, :, 2:4, 0:2, 3:6]                      # (C, pz, py, px)
    assert torch.equal(t[0, idx], block.permute(1, 2, 3, 0).reshape(-1))


def test_patchify_matches_conv_token_order():
    # A conv patch embedding with identity-like weights sees the same token order.
    x = torch.randn(1, 2, 8, 8)
    conv = torch.nn.Conv2d(2, 2 * 16, kernel_size=4, stride=4, bias=False)
    w = torch.zeros(32, 2, 4, 4)
    for c in range(2):
        for i in range(4):
            for j in range(4):
                w[(i * 4 + j) * 2 + c, c, i, j] = 1.0
    conv.weight.data = w
    tokens_conv = conv(x).flatten(2).transpose(1, 2)
    assert torch.allclose(tokens_conv, patchify(x, (4, 4)), atol=1e-6)


def test_patchify_rejects_indivisible():
    with pytest.raises(ValueError, match="not divisible"):
        patchify(torch.zeros(1, 1, 10, 10), (4, 4))


@pytest.mark.parametrize("n,ratio", [(16, 0.75), (64, 0.9), (10, 0.5), (49, 0.75)])
def test_random_masking_exact_fraction(n, ratio):
    g = torch.Generator().manual_seed(0)
    keep, mask, restore = random_masking(4, n, ratio, generator=g)
    k = num_kept(n, ratio)
    assert keep.shape == (4, k)
    assert torch.equal(mask.sum(1), torch.full((4,), float(n - k)))
    for b in range(4):
        # Kept indices are exactly the unmasked positions, no duplicates.
        assert set(keep[b].tolist()) == set(torch.nonzero(mask[b] == 0).flatten().tolist())
    # restore puts [kept, masked] back into the original order
    x = torch.arange(n, dtype=torch.float32).expand(4, n).unsqueeze(-1)
    shuffled = torch.cat([gather_tokens(x, keep), torch.zeros(4, n - k, 1)], dim=1)
    back = gather_tokens(shuffled, restore)
    assert torch.equal(back[..., 0] * (1 - mask), x[..., 0] * (1 - mask))


def test_random_masking_rejects_bad_ratio():
    with pytest.raises(ValueError):
        random_masking(1, 8, 1.0)


def test_sincos_pos_embed_any_dims():
    import math

    from domainssl.models.vit_nd import sincos_pos_embed

    table = sincos_pos_embed((2, 3, 4), 24)          # 3D: 4 frequencies per axis
    assert table.shape == (1, 24, 24)
    # token (i, j, k) = row (i * 3 + j) * 4 + k; the first axis' block is sin/cos(i * omega)
    i, j, k = 1, 2, 3
    row = table[0, (i * 3 + j) * 4 + k]
    omega = [10000 ** (-f / 4) for f in range(4)]
    assert torch.allclose(row[:4], torch.tensor([math.sin(i * w) for w in omega]), atol=1e-6)
    assert torch.allclose(row[4:8], torch.tensor([math.cos(i * w) for w in omega]), atol=1e-6)
    assert torch.allclose(row[16:20], torch.tensor([math.sin(k * w) for w in omega]), atol=1e-6)
    assert torch.unique(table[0], dim=0).shape[0] == 24   # every position distinct
    assert sincos_pos_embed((4, 4), 8).shape == (1, 16, 8)
    with pytest.raises(ValueError, match="divisible"):
        sincos_pos_embed((2, 2, 2), 16)
