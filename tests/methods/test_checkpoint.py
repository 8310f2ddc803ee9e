"""Checkpoints hold everything to resume (teacher/EMA weights, queue, centre, schedulers) and
load with weights_only=True; from_checkpoint rebuilds without unpickling."""

import json

import pytest
import torch

from domainssl.methods import build_method, from_checkpoint
from domainssl.models import build_encoder


def _enc():
    return build_encoder("vit2d_tiny", 1, 2, (16, 16), patch_size=8, embed_dim=24, depth=1,
                         num_heads=2)


def _loader(n_global, n_local=0, n=32):
    g = torch.Generator().manual_seed(0)
    data = [{"views": [torch.randn(1, 16, 16, generator=g) for _ in range(n_global)]
             + [torch.randn(1, 8, 8, generator=g) for _ in range(n_local)]} for _ in range(n)]
    return torch.utils.data.DataLoader(data, batch_size=8)


SMALL = {
    "dino": (dict(out_dim=32, hidden_dim=16, bottleneck_dim=8, momentum_start=0.9), (2, 2)),
    "mocov3": (dict(proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16, queue_size=20,
                    momentum_start=0.9), (2, 0)),
    "byol": (dict(proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16, momentum_start=0.9), (2, 0)),
    "simclr": (dict(proj_hidden_dim=16, proj_dim=8), (2, 0)),
    "mae": (dict(decoder_dim=12, decoder_depth=1, decoder_heads=2), (1, 0)),
}

STATE = {"dino": ["criterion.center", "teacher_encoder.cls_token", "teacher_head.last_layer.weight"],
         "mocov3": ["queue", "queue_ptr", "momentum_encoder.cls_token"],
         "byol": ["target_encoder.cls_token", "target_projector.0.weight"],
         "simclr": ["projector.0.weight"], "mae": ["mask_token", "decoder_pred.0.weight"]}


@pytest.mark.parametrize("name", list(SMALL))
def test_checkpoint_roundtrip_and_resume(name, tmp_path, make_trainer):
    hp, (ng, nl) = SMALL[name]
    torch.manual_seed(0)
    method = build_method(name, _enc(), lr=1e-3, max_steps=6, warmup_steps=2,
                          weight_decay_end=0.1, **hp)
    trainer = make_trainer(3)
    trainer.fit(method, _loader(ng, nl))
    path = tmp_path / "run.ckpt"
    trainer.save_checkpoint(path)

    ckpt = torch.load(path, weights_only=True)             # nothing unpickled
    json.dumps(ckpt["hyper_parameters"])                    # plain values only
    state = method.state_dict()
    for key in STATE[name]:
        assert torch.equal(ckpt["state_dict"][key], state[key]), key
    if name == "mocov3":
        assert int(ckpt["state_dict"]["queue_ptr"]) == (3 * 2 * 8) % 20
    if name == "dino":
        assert ckpt["state_dict"]["criterion.center"].abs().sum() > 0
        # the teacher is an EMA, not a copy of the student
        assert not torch.equal(state["teacher_encoder.cls_token"], state["encoder.cls_token"])
    assert ckpt["lr_schedulers"][0]["lr_lambdas"][0]["total_steps"] == 6
    assert ckpt["optimizer_states"]

    rebuilt = from_checkpoint(path)
    assert type(rebuilt) is type(method)
    for key, value in rebuilt.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert rebuilt.card_facts()["last_loss"] == method.last_loss
    json.dumps(rebuilt.card_facts())

    # resume: the fit continues from step 3 with the saved state
    resumed = from_checkpoint(path)
    trainer2 = make_trainer(5)
    trainer2.fit(resumed, _loader(ng, nl), ckpt_path=str(path), weights_only=True)
    assert trainer2.global_step == 5
    lrs = trainer2.lr_scheduler_configs[0].scheduler.last_epoch
    assert lrs == 5


def test_from_checkpoint_reports_mismatch(tmp_path, make_trainer):
    method = build_method("simclr", _enc(), lr=1e-3, max_steps=1, proj_hidden_dim=16, proj_dim=8)
    trainer = make_trainer(1)
    trainer.fit(method, _loader(2))
    path = tmp_path / "x.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["state_dict"]["projector.0.weight"]
    torch.save(ckpt, path)
    with pytest.raises(KeyError, match="projector.0.weight"):
        from_checkpoint(path)
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="not a domainssl"):
        from_checkpoint(tmp_path / "other.ckpt")


def test_resumed_read_skip_count_is_carried_by_rank_zero_only(monkeypatch):
    # A checkpoint holds the read skips summed over ranks; on resume every rank loads it, and
    # the count would be added once per rank if each carried it on.
    from lightning import LightningModule

    method = build_method("simclr", _enc(), proj_hidden_dim=16, proj_dim=8)
    method.read_skips.add(["a.tif: truncated", "b.tif: truncated", "a.tif: truncated"])
    saved = {}
    method.on_save_checkpoint(saved)
    assert saved["domainssl_monitors"]["read_skips"] == {"count": 3, "examples": ["a.tif: truncated",
                                                                                  "b.tif: truncated"]}
    for rank, expected in [(0, 3), (1, 0)]:
        monkeypatch.setattr(LightningModule, "global_rank", property(lambda self, r=rank: r))
        resumed = build_method("simclr", _enc(), proj_hidden_dim=16, proj_dim=8)
        resumed.on_load_checkpoint(saved)
        assert resumed.read_skips.count == expected



def test_a_checkpoint_restores_the_generators_only_when_a_fit_resumes(tmp_path, make_trainer):
    hp, (ng, nl) = SMALL["mae"]
    method = build_method("mae", _enc(), lr=1e-3, max_steps=4, **hp)
    trainer = make_trainer(2)
    trainer.fit(method, _loader(ng, nl))
    path = tmp_path / "run.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)["domainssl_rng"]
    assert len(saved) == 1 and saved[0]["cpu"].dtype == torch.uint8
    rebuilt = from_checkpoint(path)  # e.g. export: the process's generators stay untouched
    assert rebuilt._rng_to_restore is None
    torch.manual_seed(7)
    resumed = from_checkpoint(path)
    make_trainer(3).fit(resumed, _loader(ng, nl), ckpt_path=str(path), weights_only=True)
    assert resumed._rng_to_restore is None  # applied at fit start, then dropped


def test_resuming_to_more_steps_stretches_the_lr_schedule(tmp_path, make_trainer):
    # A finished 4-step run resumed to 8 steps: the saved schedule ended at step 4 (LR 0 there);
    # the resumed steps must follow the cosine to step 8, and the weights must move.
    from domainssl.methods.schedules import WarmupCosine

    method = build_method("simclr", _enc(), lr=1e-2, warmup_steps=1, proj_hidden_dim=16, proj_dim=8)
    trainer = make_trainer(4)
    trainer.fit(method, _loader(2))
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    path = tmp_path / "done.ckpt"
    trainer.save_checkpoint(path)

    resumed = build_method("simclr", _enc(), lr=1e-2, warmup_steps=1, proj_hidden_dim=16, proj_dim=8)
    seen = []

    class Watch(__import__("lightning").Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append((trainer.global_step, trainer.optimizers[0].param_groups[0]["lr"]))

    trainer2 = make_trainer(8, callbacks=[Watch()])
    with pytest.warns(UserWarning, match="schedule now ends at step 8"):
        trainer2.fit(resumed, _loader(2), ckpt_path=str(path), weights_only=True)
    expected = WarmupCosine(1, 8)
    assert [s for s, _ in seen] == [4, 5, 6, 7]
    for step, lr in seen:
        assert lr == pytest.approx(1e-2 * expected(step), rel=1e-6)
    assert seen[0][1] > 1e-3
    state = torch.load(path, weights_only=True)["state_dict"]
    moved = max((resumed.state_dict()[k] - v).abs().max().item() for k, v in state.items()
                if v.is_floating_point())
    assert moved > 0
