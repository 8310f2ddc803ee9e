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


def test_momentum_pairs_match_update_momentum_and_follow_replaced_tensors():
    from domainssl.methods import MomentumPairs

    def net():
        return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))

    torch.manual_seed(0)
    online, head = net(), torch.nn.Linear(2, 2)
    target, target_head = copy_frozen(online), copy_frozen(head)
    ref, ref_head = copy_frozen(online), copy_frozen(head)
    for p in list(online.parameters()) + list(head.parameters()):
        p.data.add_(torch.randn_like(p))
    online(torch.randn(8, 3))                      # running statistics move
    pairs = MomentumPairs([(target, online), (target_head, head)])
    pairs.update(0.75)
    update_momentum(ref, online, 0.75)
    update_momentum(ref_head, head, 0.75)
    for a, b in zip(list(target.state_dict().values()) + list(target_head.state_dict().values()),
                    list(ref.state_dict().values()) + list(ref_head.state_dict().values())):
        assert torch.equal(a, b)
    # .to() replaces buffers (and a user may assign a new parameter): the slots still find them
    online.to(torch.float64), target.to(torch.float64)
    online[0].weight = torch.nn.Parameter(torch.ones(4, 3, dtype=torch.float64))
    online(torch.randn(8, 3, dtype=torch.float64))
    pairs.update(0.5)
    assert torch.equal(target[1].running_mean, online[1].running_mean)
    assert target[1].running_mean.dtype == torch.float64
    expected = 0.5 * ref[0].weight.double() + 0.5 * torch.ones(4, 3, dtype=torch.float64)
    torch.testing.assert_close(target[0].weight, expected)


def test_momentum_pairs_update_a_tied_weight_once_and_refuse_a_mismatch():
    from domainssl.methods import MomentumPairs

    online = torch.nn.Sequential(torch.nn.Linear(2, 2, bias=False), torch.nn.Linear(2, 2, bias=False))
    online[1].weight = online[0].weight
    target = copy_frozen(online)                    # deepcopy keeps the tie
    with torch.no_grad():
        online[0].weight.fill_(1.0)
        target[0].weight.fill_(0.0)
    MomentumPairs([(target, online)]).update(0.5)
    assert torch.equal(target[0].weight, torch.full((2, 2), 0.5))   # not 0.75 (applied twice)
    with pytest.raises(ValueError, match="does not mirror"):
        MomentumPairs([(torch.nn.Linear(2, 2), torch.nn.Sequential(torch.nn.Linear(2, 2)))])


@pytest.mark.parametrize("name", ["byol", "mocov3", "dino"])
def test_each_momentum_method_moves_every_target_tensor_by_its_ema(name):
    from domainssl.methods import build_method
    from domainssl.models import build_encoder

    enc = build_encoder("vit2d_tiny", 1, 2, (16, 16), patch_size=8, embed_dim=24, depth=1, num_heads=2)
    small = (dict(out_dim=32, hidden_dim=16, bottleneck_dim=8) if name == "dino"
             else dict(proj_hidden_dim=16, pred_hidden_dim=16, proj_dim=8))
    m = build_method(name, enc, max_steps=10, momentum_start=0.9, **small)
    pairs = m.momentum_pairs()
    assert pairs and all(t is not o for t, o in pairs)
    before = [copy_frozen(t) for t, _ in pairs]
    with torch.no_grad():
        for _, online in pairs:
            for p in online.parameters():
                p.add_(1.0)
            for b in online.buffers():
                b.add_(2)
    m.momentum_update()                          # global step 0: momentum 0.9
    for (target, online), old in zip(pairs, before):
        for t, o, b in zip(target.parameters(), online.parameters(), old.parameters()):
            torch.testing.assert_close(t, 0.9 * b + 0.1 * o)
        for t, o in zip(target.buffers(), online.buffers()):
            assert torch.equal(t, o)


def test_a_hand_written_loop_moves_the_schedules_by_schedule_step():
    # without a Trainer the step is the loop's: set it, and BYOL's momentum reaches its end and
    # DINO's teacher temperature warms up (both stayed at step 0 before)
    from domainssl.methods import build_method
    from domainssl.models import build_encoder

    def enc():
        return build_encoder("vit2d_tiny", 1, 2, (16, 16), patch_size=8, embed_dim=24, depth=1, num_heads=2)

    byol = build_method("byol", enc(), max_steps=10, momentum_start=0.9, momentum_end=1.0,
                        proj_hidden_dim=16, pred_hidden_dim=16, proj_dim=8)
    assert byol.schedule_step == 0 and byol.current_momentum() == pytest.approx(0.9)
    byol.schedule_step = 5
    assert byol.current_momentum() == pytest.approx(cosine_momentum(5, 10, 0.9, 1.0)) and 0.9 < byol.current_momentum() < 1
    byol.schedule_step = 10
    assert byol.current_momentum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match=">= 0"):
        byol.schedule_step = -1

    dino = build_method("dino", enc(), max_steps=10, out_dim=32, hidden_dim=16, bottleneck_dim=8,
                        warmup_teacher_temp=0.02, teacher_temp=0.06, warmup_teacher_temp_steps=4,
                        num_global_crops=2)
    seen = []
    temperature = dino.criterion.teacher_temperature
    dino.criterion.teacher_temperature = lambda step: seen.append(step) or temperature(step)
    views = [torch.randn(2, 1, 16, 16) for _ in range(2)]
    for step in range(3):
        dino.schedule_step = step
        dino.compute_loss(views)
    assert seen == [0, 1, 2] and temperature(2) == pytest.approx(0.04)
