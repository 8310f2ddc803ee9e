"""MAE: exact masking fraction, loss over masked patches only, 2D / 3D / channel groups."""

import pytest
import torch

from domainssl.methods import MAE
from domainssl.models import build_encoder, patchify


def _mae(arch="vit2d_tiny", c=2, d=2, size=(16, 16), patch=4, groups=None, **kw):
    enc = build_encoder(arch, c, d, size, patch_size=patch, embed_dim=24, depth=1, num_heads=2,
                        channel_groups=groups)
    return MAE(enc, decoder_dim=16, decoder_depth=1, decoder_heads=2, **kw)


@pytest.mark.parametrize("ratio", [0.75, 0.5, 0.9])
def test_masks_exact_fraction(ratio):
    m = _mae()
    x = torch.randn(3, 2, 16, 16)
    latent, mask, restore = m.forward_encoder(x, ratio)
    n = 16
    kept = int(round(n * (1 - ratio)))
    assert latent.shape == (3, 1 + kept, 24)
    assert torch.equal(mask.sum(1), torch.full((3,), float(n - kept)))


def test_loss_counts_only_masked_patches():
    m = _mae(norm_pix_loss=False)
    x = torch.randn(2, 2, 16, 16)
    target = patchify(x, (4, 4))                                    # (2, 16, 32)
    mask = torch.zeros(2, 16)
    mask[:, :4] = 1.0
    # perfect on masked patches, garbage on visible ones: loss 0
    pred = torch.where(mask.bool().unsqueeze(-1), target, target + 100.0)
    assert m.forward_loss(x, [pred], mask).item() == pytest.approx(0.0, abs=1e-6)
    # error of 1 on every masked pixel, 0 elsewhere: loss exactly 1
    pred = torch.where(mask.bool().unsqueeze(-1), target + 1.0, target)
    assert m.forward_loss(x, [pred], mask).item() == pytest.approx(1.0, rel=1e-6)


def test_norm_pix_target():
    m = _mae(norm_pix_loss=True)
    x = torch.randn(1, 2, 16, 16) * 5 + 3
    t = patchify(x, (4, 4))
    t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6).sqrt()
    mask = torch.ones(1, 16)
    assert m.forward_loss(x, [t], mask).item() == pytest.approx(0.0, abs=1e-5)
    assert m.forward_loss(x, [torch.zeros_like(t)], mask).item() == pytest.approx(1.0, abs=0.05)


def test_mae_3d_anisotropic_and_grads():
    m = _mae("vit3d_tiny", c=1, d=3, size=(8, 16, 16), patch=(2, 8, 8))
    x = torch.randn(2, 1, 8, 16, 16)
    loss, emb = m.compute_loss([x])
    loss.backward()
    assert torch.isfinite(loss) and emb.shape == (2, 24)
    assert m.encoder.patch_embed.weight.grad is not None
    preds = m.forward_decoder(*m.forward_encoder(x, 0.75)[::2], grid=(4, 2, 2))
    assert preds[0].shape == (2, 16, 2 * 8 * 8)


def test_channel_group_masking_independent():
    groups = [[0, 1], [2], [3, 4, 5]]
    m = _mae(c=6, groups=groups, norm_pix_loss=False)
    x = torch.randn(4, 6, 16, 16)
    latent, mask, restore = m.forward_encoder(x, 0.75)
    assert mask.shape == (4, 3 * 16)                 # a token per (group, position)
    assert latent.shape[1] == 1 + 12
    per_group = mask.view(4, 3, 16).sum(-1)
    assert not torch.all(per_group == per_group[:, :1])  # groups masked independently
    preds = m.forward_decoder(latent, restore, (4, 4))
    assert [p.shape[-1] for p in preds] == [2 * 16, 1 * 16, 3 * 16]
    # targets per group are that group's channels only
    targets = m.patch_targets(x)
    assert torch.equal(targets[2], patchify(x[:, 3:6], (4, 4)))
    assert m.forward_loss(x, targets, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_mae_rejects_cnn():
    enc = build_encoder("resnet18", 1, 2, (32, 32))
    with pytest.raises(ValueError, match="ViT"):
        MAE(enc)


def test_mae_on_timm_vit():
    enc = build_encoder("vit_tiny_patch16_224", 3, 2, (32, 32), depth=1)
    m = MAE(enc, decoder_dim=16, decoder_depth=1, decoder_heads=2)
    loss, emb = m.compute_loss([torch.randn(2, 3, 32, 32)])
    assert torch.isfinite(loss) and emb.shape == (2, 192)


@pytest.mark.parametrize("arch,d,size,patch", [("vit2d_tiny", 2, (16, 16), 4), ("vit3d_tiny", 3, (8, 8, 8), 4)])
def test_compiled_loss_does_not_recompile_for_position_tables(arch, d, size, patch):
    # The position tables of the training grid are buffers: a compiled loss reads them without
    # guarding on a cache that its first call fills (that guard forced a second full compile).
    import torch._dynamo

    m = _mae(arch, c=2, d=d, size=size, patch=patch)
    x = torch.randn(2, 2, *size)
    torch._dynamo.reset()
    loss_fn = torch.compile(m.compute_loss, backend="eager", dynamic=False)
    with torch._dynamo.config.patch(error_on_recompile=True):
        first = loss_fn([x])[0]
        second = loss_fn([x])[0]          # raises RecompileError if a guard failed
    torch._dynamo.reset()
    assert torch.isfinite(first) and torch.isfinite(second)


def test_position_tables_match_sincos_and_stay_out_of_state_dict():
    from domainssl.methods.mae import decoder_pos_embed
    from domainssl.models.vit_nd import sincos_pos_embed

    m = _mae()                                  # 16² input, 4 px patches: a 4 x 4 grid
    assert torch.equal(m.encoder.pos_table((4, 4), torch.float32), sincos_pos_embed((4, 4), 24))
    assert torch.equal(m.decoder_pos((4, 4), torch.float32), decoder_pos_embed((4, 4), 16))
    other = m.decoder_pos((2, 8), torch.bfloat16)   # another input size: built once, cached
    assert other.dtype == torch.bfloat16 and other.shape == (1, 16, 16)
    assert other is m.decoder_pos((2, 8), torch.bfloat16)
    assert torch.equal(other.float(), decoder_pos_embed((2, 8), 16).bfloat16().float())
    assert not any("table" in k for k in m.state_dict())   # checkpoints keep their keys


@pytest.mark.parametrize("arch", ["vit2d_tiny", "test_vit"])
def test_mae_compiles_the_block_stacks_it_runs(arch):
    # MAE calls embed_patches / encode_tokens, never encoder.forward: compiling the encoder
    # module would leave its blocks eager.
    if arch == "test_vit":
        enc = build_encoder("test_vit", 2, 2, (32, 32))
        m = MAE(enc, decoder_dim=16, decoder_depth=1, decoder_heads=2)
        blocks = enc.model.blocks
    else:
        m = _mae()
        blocks = m.encoder.blocks
    assert m.compile_targets() == [blocks, m.decoder_blocks]
    assert m.encoder.token_blocks is blocks


def test_masked_indices_are_exactly_the_masked_tokens():
    from domainssl.models import masked_indices, random_masking

    keep, mask, restore = random_masking(5, 20, 0.75, generator=torch.Generator().manual_seed(3))
    only = masked_indices(restore, keep.shape[1])
    assert only.shape == (5, 15)
    assert torch.equal(torch.gather(mask, 1, only), torch.ones(5, 15))
    # together with the kept ones they cover every token once
    every = torch.cat([keep, only], dim=1).sort(dim=1).values
    assert torch.equal(every, torch.arange(20).expand(5, -1))


@pytest.mark.parametrize("norm_pix", [True, False])
@pytest.mark.parametrize("arch,d,size,patch", [("vit2d_tiny", 2, (16, 16), 4),
                                               ("vit3d_tiny", 3, (8, 16, 16), (2, 8, 8))])
def test_training_loss_on_masked_tokens_equals_the_dense_loss(norm_pix, arch, d, size, patch):
    # compute_loss predicts only the masked patches; the loss and every gradient must equal
    # predicting all patches and weighting by the mask.
    from domainssl.models import grid_shape

    m = _mae(arch, c=2, d=d, size=size, patch=patch, norm_pix_loss=norm_pix)
    x = torch.randn(3, 2, *size) * 3 + 1
    seen = []
    hook = m.decoder_pred[0].register_forward_hook(lambda mod, inp, out: seen.append(out.shape[1]))
    torch.manual_seed(7)
    fast, _ = m.compute_loss([x])
    hook.remove()
    n = len(m.encoder.pos_table.table[0])
    assert seen == [n - round(n * 0.25)]        # the head saw the masked tokens only
    fast.backward()
    fast_grads = {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}
    m.zero_grad()
    torch.manual_seed(7)                         # the same masks
    latent, mask, restore = m.forward_encoder(x, 0.75)
    dense = m.forward_loss(x, m.forward_decoder(latent, restore, grid_shape(size, m.patch_size)), mask)
    dense.backward()
    assert fast.item() == pytest.approx(dense.item(), rel=1e-5)
    assert set(fast_grads) == {k for k, p in m.named_parameters() if p.grad is not None}
    for k, p in m.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(fast_grads[k], p.grad, rtol=1e-4, atol=1e-6, msg=k)


def test_predicting_only_some_tokens_needs_one_channel_group():
    m = _mae(c=3, groups=[[0], [1, 2]])
    latent, mask, restore = m.forward_encoder(torch.randn(1, 3, 16, 16), 0.75)
    with pytest.raises(ValueError, match="one channel group"):
        m.forward_decoder(latent, restore, (4, 4), only=restore[:, :3])
