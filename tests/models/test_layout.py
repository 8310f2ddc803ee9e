import pytest
import torch

from domainssl.methods import build_method
from domainssl.models import build_encoder
from domainssl.models.layout import has_spatial_convs, to_channels_last


def test_only_real_cnns_count_as_spatial_convs():
    assert has_spatial_convs(build_encoder("resnet18", 3, 2, (32, 32)))
    assert has_spatial_convs(build_encoder("resnet3d_10", 1, 3, (16, 16, 16)))
    # a ViT's patch embedding is a strided matrix product: nothing to gain from channels-last
    assert not has_spatial_convs(build_encoder("vit2d_tiny", 1, 2, (16, 16), patch_size=8,
                                               embed_dim=24, depth=1, num_heads=2))


@pytest.mark.parametrize("arch,dims,shape,fmt", [
    ("resnet18", 2, (2, 3, 32, 32), torch.channels_last),
    ("resnet3d_10", 3, (2, 1, 16, 16, 16), torch.channels_last_3d),
])
def test_channels_last_keeps_values_keys_and_parameters(arch, dims, shape, fmt):
    torch.manual_seed(0)
    enc = build_encoder(arch, shape[1], dims, shape[2:]).eval()
    x = torch.randn(shape)
    before = enc(x)
    params = list(enc.parameters())
    keys = list(enc.state_dict())
    assert to_channels_last(enc) > 0
    convs = [p for p in enc.parameters() if p.dim() == len(shape)]
    assert convs and all(p.is_contiguous(memory_format=fmt) for p in convs)
    assert list(enc.parameters()) == params and all(a is b for a, b in zip(enc.parameters(), params))
    assert list(enc.state_dict()) == keys
    torch.testing.assert_close(enc(x), before, rtol=1e-4, atol=1e-5)
    assert to_channels_last(enc) == 0  # idempotent


def test_a_training_step_runs_on_channels_last_weights():
    # Gradients and AdamW state follow the parameters' layout; one step must update every weight.
    torch.manual_seed(0)
    m = build_method("byol", build_encoder("resnet18", 3, 2, (32, 32)), proj_hidden_dim=16,
                     proj_dim=8, pred_hidden_dim=16, max_steps=10)
    to_channels_last(m)
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    w = m.encoder.model.conv1.weight if hasattr(m.encoder, "model") else next(
        p for p in m.encoder.parameters() if p.dim() == 4)
    w0 = w.detach().clone()
    loss, _ = m.compute_loss([torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)])
    loss.backward()
    assert w.grad.is_contiguous(memory_format=torch.channels_last)
    opt.step()
    m.momentum_update()
    assert not torch.equal(w, w0) and torch.isfinite(w).all()
    assert w.is_contiguous(memory_format=torch.channels_last)


def test_prepare_layout_leaves_cpu_runs_alone():
    m = build_method("simclr", build_encoder("resnet18", 3, 2, (32, 32)), proj_hidden_dim=16,
                     proj_dim=8)
    assert m.prepare_layout() is False
    assert all(p.is_contiguous() for p in m.parameters())
