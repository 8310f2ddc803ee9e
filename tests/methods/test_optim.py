import torch

from domainssl.methods.optim import fused_adamw_available


def test_fused_adamw_is_offered_where_torch_has_the_kernel():
    # torch >= 2.4 has a fused CPU AdamW; a device type without one is never offered it.
    assert fused_adamw_available(torch.device("cpu"))
    assert not fused_adamw_available(torch.device("meta"))


def test_fused_cpu_adamw_takes_the_textbook_first_step():
    # First AdamW step: p <- p * (1 - lr * wd) - lr * m_hat / (sqrt(v_hat) + eps) = 1 * 0.999 - 0.1
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([p], lr=0.1, weight_decay=0.01, fused=True)
    p.grad = torch.full((3,), 2.0)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.full((3,), 0.899), rtol=0, atol=1e-6)
