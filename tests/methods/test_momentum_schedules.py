"""EMA updates, momentum and LR / weight-decay schedules."""

import math

import pytest
import torch

from domainssl.methods.momentum import copy_frozen, cosine_momentum, ema_update, update_momentum
from domainssl.methods.schedules import WarmupCosine, cosine_schedule


def test_ema_update_exact():
    t = [torch.tensor([1.0, 2.0]), torch.tensor([[0.0]])]
    o = [torch.tensor([3.0, -2.0]), torch.tensor([[10.0]])]
    ema_update(t, o, 0.9)
    assert torch.allclose(t[0], torch.tensor([0.9 * 1 + 0.1 * 3, 0.9 * 2 + 0.1 * -2]))
    assert torch.allclose(t[1], torch.tensor([[1.0]]))
    ema_update(t, o, 1.0)  # momentum 1 leaves the target alone
    assert torch.allclose(t[1], torch.tensor([[1.0]]))


def test_update_momentum_modules():
    online = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    target = copy_frozen(online)
    assert all(not p.requires_grad for p in target.parameters())
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    online.train()(torch.randn(8, 3))  # changes BN running stats
    before = [p.clone() for p in target.parameters()]
    update_momentum(target, online, 0.75)
    for b, p, o in zip(before, target.parameters(), online.parameters()):
        assert torch.allclose(p, 0.75 * b + 0.25 * o)
    assert torch.equal(target[1].running_mean, online[1].running_mean)


def test_cosine_momentum_endpoints():
    assert cosine_momentum(0, 100, 0.996, 1.0) == pytest.approx(0.996)
    assert cosine_momentum(50, 100, 0.996, 1.0) == pytest.approx(0.998)
    assert cosine_momentum(100, 100, 0.996, 1.0) == pytest.approx(1.0)
    assert cosine_momentum(500, 100, 0.996, 1.0) == pytest.approx(1.0)


def test_cosine_schedule_with_warmup():
    assert cosine_schedule(0, 110, 1.0, 0.0, warmup_steps=10) == 0.0
    assert cosine_schedule(5, 110, 1.0, 0.0, warmup_steps=10) == pytest.approx(0.5)
    assert cosine_schedule(10, 110, 1.0, 0.0, warmup_steps=10) == pytest.approx(1.0)
    assert cosine_schedule(60, 110, 1.0, 0.0, warmup_steps=10) == pytest.approx(0.5)
    assert cosine_schedule(110, 110, 1.0, 0.1, warmup_steps=10) == pytest.approx(0.1)
    # weight-decay style: rising cosine from 0.04 to 0.4
    assert cosine_schedule(50, 100, 0.04, 0.4) == pytest.approx(0.22)


def test_warmup_cosine_lambda_lr_state_is_plain():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=2.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosine(2, 10, 0.0))
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:3] == pytest.approx([0.0, 1.0, 2.0])
    assert lrs[3] == pytest.approx(2.0 * (1 + math.cos(math.pi / 8)) / 2)
    state = sched.state_dict()
    assert state["lr_lambdas"][0] == {"warmup_steps": 2, "total_steps": 10, "final_ratio": 0.0}
