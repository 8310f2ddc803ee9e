"""Losses against hand calculations and direct formulas."""

import math

import pytest
import torch
import torch.nn.functional as F

from domainssl.methods.losses import DINOLoss, cosine_similarity_loss, info_nce_loss, nt_xent_loss


def test_cosine_loss_hand_values():
    a = torch.tensor([[1.0, 0.0]])
    a_pos = torch.tensor([[0.9, 0.4]])
    b = torch.tensor([[-0.5, 0.8]])
    cos_pos = F.cosine_similarity(a, a_pos).item()
    cos_neg = F.cosine_similarity(a, b).item()
    assert cos_pos == pytest.approx(0.914, abs=1e-3)
    assert cos_neg == pytest.approx(-0.530, abs=1e-3)
    # BYOL: 2 - 2 cos
    assert cosine_similarity_loss(a, a_pos).item() == pytest.approx(2 - 2 * 0.9138, abs=1e-3)
    assert cosine_similarity_loss(a, b).item() == pytest.approx(2 + 2 * 0.5300, abs=1e-3)


def test_cosine_loss_stops_target_gradient():
    p = torch.randn(3, 4, requires_grad=True)
    z = torch.randn(3, 4, requires_grad=True)
    cosine_similarity_loss(p, z).backward()
    assert p.grad is not None and z.grad is None


def _nt_xent_direct(z1, z2, t):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z.shape[0]
    b = n // 2
    total = 0.0
    for i in range(n):
        j = (i + b) % n
        num = math.exp(float(z[i] @ z[j]) / t)
        den = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(n) if k != i)
        total += -math.log(num / den)
    return total / n


def test_nt_xent_matches_direct_formula():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    for t in (0.1, 0.5):
        assert nt_xent_loss(z1, z2, t).item() == pytest.approx(_nt_xent_direct(z1, z2, t), rel=1e-5)


def test_nt_xent_hand_example():
    # Two pairs on the unit circle: a, a+ and b, b+ (the vectors).
    z1 = torch.tensor([[1.0, 0.0], [-0.5, 0.8]])
    z2 = torch.tensor([[0.9, 0.4], [-0.6, 0.75]])
    assert nt_xent_loss(z1, z2, 1.0).item() == pytest.approx(_nt_xent_direct(z1, z2, 1.0), rel=1e-6)
    # perfect positives far from negatives give a lower loss than swapped pairs
    assert nt_xent_loss(z1, z2, 0.5) < nt_xent_loss(z1, z2.flip(0), 0.5)


def test_info_nce_matches_direct_formula():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    t = 0.2
    qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
    direct = 0.0
    for i in range(4):
        logits = [float(qn[i] @ kn[j]) / t for j in range(4)]
        direct += -(logits[i] - math.log(sum(math.exp(x) for x in logits)))
    direct = direct / 4 * 2 * t
    assert info_nce_loss(q, k, t).item() == pytest.approx(direct, rel=1e-5)
    assert info_nce_loss(q, k, t, scale_by_temperature=False).item() == pytest.approx(direct / (2 * t), rel=1e-5)


def test_info_nce_with_queue():
    g = torch.Generator().manual_seed(2)
    q, k = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    queue = F.normalize(torch.randn(5, 4, generator=g), dim=1)
    t = 0.5
    qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
    direct = 0.0
    for i in range(3):
        logits = [float(qn[i] @ kn[i]) / t] + [float(qn[i] @ queue[j]) / t for j in range(5)]
        direct += -(logits[0] - math.log(sum(math.exp(x) for x in logits)))
    assert info_nce_loss(q, k, t, queue=queue, scale_by_temperature=False).item() == \
        pytest.approx(direct / 3, rel=1e-5)


def test_dino_loss_direct_and_centre_update():
    g = torch.Generator().manual_seed(3)
    v, gl, b, k = 4, 2, 3, 5
    s = torch.randn(v, b, k, generator=g)
    t = torch.randn(gl, b, k, generator=g)
    crit = DINOLoss(k, student_temp=0.1, teacher_temp=0.05, warmup_teacher_temp=0.02,
                    warmup_steps=10, center_momentum=0.9)
    crit.center.fill_(0.3)
    step = 5
    tt = 0.02 + 0.5 * (0.05 - 0.02)
    assert crit.teacher_temperature(step) == pytest.approx(tt)
    assert crit.teacher_temperature(10) == pytest.approx(0.05)
    q = F.softmax((t - 0.3) / tt, dim=-1)
    logp = F.log_softmax(s / 0.1, dim=-1)
    terms = [-(q[i] * logp[j]).sum(-1).mean() for i in range(gl) for j in range(v) if i != j]
    direct = sum(terms) / len(terms)
    loss = crit(s, t, step)
    assert loss.item() == pytest.approx(direct.item(), rel=1e-5)
    # centre: 0.9 * 0.3 + 0.1 * batch mean of teacher outputs
    expected = 0.9 * 0.3 + 0.1 * t.reshape(-1, k).mean(0, keepdim=True)
    assert torch.allclose(crit.center, expected, atol=1e-6)
    # it is a buffer: saved with the state dict
    assert "center" in crit.state_dict()


def test_losses_fp32_under_bf16_autocast():
    z1, z2 = torch.randn(4, 8), torch.randn(4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = nt_xent_loss(z1.bfloat16(), z2.bfloat16(), 0.1)
    assert loss.dtype == torch.float32
