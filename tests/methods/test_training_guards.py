"""NaN/Inf guard inside a real fit, build_method, DINO multi-crop in 3D, grouping of crops."""

import pytest
import torch

from domainssl.methods import DINO, NonFiniteLossError, build_method
from domainssl.models import build_encoder


def _enc():
    return build_encoder("vit2d_tiny", 1, 2, (16, 16), patch_size=8, embed_dim=24, depth=1,
                         num_heads=2)


def _loader_with_nan(at_batch=1, n_batches=3):
    """Batches of 4 two-view samples; NaN in the batch(es) `at_batch` (an int or a tuple)."""
    g = torch.Generator().manual_seed(0)
    bad = {at_batch} if isinstance(at_batch, int) else set(at_batch)
    data = []
    for i in range(n_batches * 4):
        v = [torch.randn(1, 16, 16, generator=g) for _ in range(2)]
        if i // 4 in bad:
            v[0][0, 0, 0] = float("nan")
        data.append({"views": v})
    return torch.utils.data.DataLoader(data, batch_size=4)


def test_nan_guard_skips_step(make_trainer, monkeypatch):
    # The synchronising guard (an optimiser without a fused kernel): the step never runs.
    from domainssl.methods import base

    monkeypatch.setattr(base, "fused_adamw_available", lambda device: False)
    method = build_method("simclr", _enc(), lr=1e-2, max_steps=3, proj_hidden_dim=16, proj_dim=8,
                          nan_guard="skip")
    with pytest.warns(RuntimeWarning, match="step 1: loss is nan"):
        make_trainer(3).fit(method, _loader_with_nan(at_batch=1, n_batches=3))
    assert method.skipped_steps == 1 and not method._fused_optimizer
    # weights stayed finite: the NaN batch never reached the optimiser
    assert all(torch.isfinite(p).all() for p in method.parameters())


def test_nan_guard_stops(make_trainer):
    method = build_method("simclr", _enc(), lr=1e-2, max_steps=3, proj_hidden_dim=16, proj_dim=8,
                          nan_guard="stop")
    with pytest.raises(NonFiniteLossError, match="step 0"):
        make_trainer(3).fit(method, _loader_with_nan(at_batch=0))


def test_build_method_names_and_errors():
    for name, cls in [("SimCLR", "SimCLR"), ("moco", "MoCoV3"), ("moco-v3", "MoCoV3"),
                      ("byol", "BYOL"), ("dino", "DINO"), ("mae", "MAE")]:
        kw = dict(out_dim=16, hidden_dim=8, bottleneck_dim=8) if cls == "DINO" else {}
        assert type(build_method(name, _enc(), **kw)).__name__ == cls
    with pytest.raises(ValueError, match="unknown SSL method"):
        build_method("swav", _enc())
    with pytest.raises(ValueError, match="nan_guard"):
        build_method("simclr", _enc(), nan_guard="ignore")


def test_dino_3d_multicrop_one_forward_per_shape():
    enc = build_encoder("vit3d_tiny", 1, 3, (8, 16, 16), patch_size=(2, 8, 8), embed_dim=24,
                        depth=1, num_heads=2)
    m = DINO(enc, out_dim=32, hidden_dim=16, bottleneck_dim=8)
    calls = []
    m.encoder.register_forward_hook(lambda mod, inp, out: calls.append(tuple(inp[0].shape)))
    views = [torch.randn(3, 1, 8, 16, 16) for _ in range(2)] + \
            [torch.randn(3, 1, 4, 8, 8) for _ in range(3)] + [torch.randn(3, 1, 4, 16, 16)]
    loss, emb = m.compute_loss(views)
    loss.backward()
    assert torch.isfinite(loss) and emb.shape == (3, 24)
    # globals together, then each local crop size together: 3 student forwards, not 6
    assert calls == [(6, 1, 8, 16, 16), (9, 1, 4, 8, 8), (3, 1, 4, 16, 16)]
    assert m.head.last_layer.weight.grad is not None
    with pytest.raises(ValueError, match="global crops"):
        m.compute_loss([views[0], views[2]])


def test_dino_teacher_temperature_warmup_and_momentum():
    m = DINO(_enc(), out_dim=16, hidden_dim=8, bottleneck_dim=8, warmup_teacher_temp=0.02,
             teacher_temp=0.06, warmup_teacher_temp_steps=4, max_steps=10)
    assert m.criterion.teacher_temperature(0) == pytest.approx(0.02)
    assert m.criterion.teacher_temperature(2) == pytest.approx(0.04)
    assert m.criterion.teacher_temperature(9) == pytest.approx(0.06)
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(1.0)
    before = m.teacher_encoder.cls_token.clone()
    m.momentum_update()  # global_step 0 -> momentum_start 0.996
    expected = 0.996 * before + 0.004 * m.encoder.cls_token
    assert torch.allclose(m.teacher_encoder.cls_token, expected, atol=1e-6)


def test_compile_option_compiles_in_place(monkeypatch):
    # torch.compile itself is too slow for a CPU unit test; check what gets compiled and that
    # state_dict keys stay those of the uncompiled model (checkpoints stay portable).
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compiled.append((self, kw)))
    m = build_method("byol", _enc(), compile=True, proj_hidden_dim=16, proj_dim=8,
                     pred_hidden_dim=16)
    keys = list(m.state_dict())
    m.configure_model()
    assert [c[0] for c in compiled] == [m.encoder, m.projector, m.predictor, m.target_encoder,
                                        m.target_projector]
    assert list(m.state_dict()) == keys
    compiled.clear()
    build_method("simclr", _enc(), proj_hidden_dim=16, proj_dim=8).configure_model()
    assert compiled == []


def test_full_compile_wraps_the_loss_once_and_keeps_keys(monkeypatch):
    # "full" compiles compute_loss as one graph; calling configure_model twice (Lightning may)
    # must not wrap it twice, and the wrapped loss must still be the method's own.
    wrapped = []

    def fake_compile(fn, **kw):
        wrapped.append(kw)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    m = build_method("simclr", _enc(), compile="full", proj_hidden_dim=16, proj_dim=8)
    keys = list(m.state_dict())
    m.configure_model()
    m.configure_model()
    assert wrapped == [{"dynamic": False}]
    assert "compute_loss" in m.__dict__ and list(m.state_dict()) == keys
    with pytest.raises(ValueError, match="compile must be"):
        build_method("simclr", _enc(), compile="fast")


@pytest.mark.parametrize("name,arch,dims,size", [
    ("simclr", "resnet18", 2, (32, 32)),
    ("byol", "convnext_atto", 2, (32, 32)),
    ("mocov3", "resnet3d_10", 3, (16, 16, 16)),
    ("dino", "resnet3d_10", 3, (16, 16, 16)),
])
def test_cnn_encoders_train_one_step(name, arch, dims, size):
    kw = {"widen_factor": 0.25} if arch.startswith("resnet3d") else {}
    enc = build_encoder(arch, 2, dims, size, **kw)
    hp = (dict(out_dim=32, hidden_dim=16, bottleneck_dim=8) if name == "dino"
          else dict(proj_hidden_dim=16, proj_dim=8) if name == "simclr"
          else dict(proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16))
    m = build_method(name, enc, max_steps=2, **hp)
    views = [torch.randn(4, 2, *size) for _ in range(2)]
    if name == "dino":
        views.append(torch.randn(4, 2, *[s // 2 for s in size]))
    loss, emb = m.compute_loss(views)
    loss.backward()
    assert torch.isfinite(loss) and emb.shape == (4, enc.embed_dim)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.encoder.parameters())
    m.momentum_update()


def test_misspelt_option_is_an_error():
    with pytest.raises(TypeError, match="temprature"):
        build_method("simclr", _enc(), temprature=0.1)


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_grad_clip_works_with_fused_adamw_under_bf16(monkeypatch, algorithm):
    # On a GPU, DINO (grad_clip 3.0) + fused AdamW + bf16-mixed made Lightning raise "does not
    # allow for gradient clipping"; CPU AdamW can run fused too, so the same path runs here.
    import lightning as L

    from domainssl.methods import base

    monkeypatch.setattr(base, "fused_adamw_available", lambda device: True)
    seen = {}

    class Probe(L.Callback):
        def on_before_optimizer_step(self, trainer, module, optimizer):
            seen["fused"] = optimizer.defaults["fused"]

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            grads = [p.grad for p in module.parameters() if p.grad is not None]
            seen["norm"] = torch.linalg.vector_norm(torch.stack(
                [torch.linalg.vector_norm(g) for g in grads])).item()
            seen["max"] = max(g.abs().max().item() for g in grads)

    torch.manual_seed(0)
    m = build_method("simclr", _enc(), grad_clip=1e-3, proj_hidden_dim=16, proj_dim=8,
                     max_steps=1)
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.DataLoader(
        [{"views": [torch.randn(1, 16, 16, generator=g) for _ in range(2)]} for _ in range(8)],
        batch_size=8)
    trainer = L.Trainer(accelerator="cpu", precision="bf16-mixed", max_steps=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_algorithm=algorithm,
                        callbacks=[Probe()])
    # Keep the gradients after the step so the callback can read the clipped values.
    monkeypatch.setattr(torch.optim.Optimizer, "zero_grad", lambda self, set_to_none=True: None)
    trainer.fit(m, data)
    assert seen["fused"] is True
    if algorithm == "norm":
        assert seen["norm"] == pytest.approx(1e-3, rel=1e-2)
    else:
        assert seen["max"] <= 1e-3 + 1e-9


def _fit_simclr(make_trainer, loader, steps, **kw):
    torch.manual_seed(0)
    method = build_method("simclr", _enc(), lr=1e-2, max_steps=steps, proj_hidden_dim=16,
                          proj_dim=8, **kw)
    make_trainer(steps).fit(method, loader)
    return method


def test_device_side_guard_skips_without_a_host_sync(make_trainer, monkeypatch):
    # With a fused AdamW the NaN step is skipped on the device (found_inf) and reported one
    # step later; the outcome must be the same as the synchronising guard's.
    from domainssl.methods import base

    monkeypatch.setattr(base, "fused_adamw_available", lambda device: False)
    reference = _fit_simclr(make_trainer, _loader_with_nan(at_batch=1, n_batches=4), 4)
    assert not reference._fused_optimizer and reference.skipped_steps == 1
    monkeypatch.setattr(base, "fused_adamw_available", lambda device: True)
    deferred = []

    class CountedStats(base.DeferredStats):
        def __init__(self, step, stats):
            deferred.append(step)
            super().__init__(step, stats)

    monkeypatch.setattr(base, "DeferredStats", CountedStats)
    with pytest.warns(RuntimeWarning, match="step 1: loss is nan.*skipping this optimisation step"):
        method = _fit_simclr(make_trainer, _loader_with_nan(at_batch=1, n_batches=4), 4)
    assert method._fused_optimizer and method.skipped_steps == 1
    assert deferred == [0, 1, 2, 3]  # every step's numbers went through the deferred path
    assert all(torch.isfinite(p).all() for p in method.parameters())
    opt_steps = {int(s["step"]) for s in method.trainer.optimizers[0].state.values()}
    assert opt_steps == {3}  # four batches, one update skipped on the device
    # Same training up to the fused kernel's rounding (fused and for-each AdamW differ ~1e-4).
    assert method.last_loss == pytest.approx(reference.last_loss, rel=1e-3)
    assert method.collapse.last == pytest.approx(reference.collapse.last, rel=1e-3)


def test_device_side_guard_stop_still_stops_before_the_update(make_trainer, monkeypatch):
    from domainssl.methods import base

    monkeypatch.setattr(base, "fused_adamw_available", lambda device: True)
    with pytest.raises(NonFiniteLossError, match="step 0"):
        _fit_simclr(make_trainer, _loader_with_nan(at_batch=0), 3, nan_guard="stop")


@pytest.mark.parametrize("fused", [False, True])
def test_a_skipped_step_leaves_queue_centre_and_norm_statistics_usable(make_trainer, monkeypatch, fused):
    # The forward pass of a NaN batch updates MoCo's queue, DINO's centre and BatchNorm running
    # statistics before the guard can act; left NaN, every later loss (queue, centre) or every
    # eval-mode output (statistics: transfer) would be NaN.
    from domainssl.methods import base

    monkeypatch.setattr(base, "fused_adamw_available", lambda device: fused)
    loader = _loader_with_nan(at_batch=1, n_batches=4)
    moco = build_method("mocov3", _enc(), lr=1e-3, max_steps=4, proj_hidden_dim=16, proj_dim=8,
                        pred_hidden_dim=16, queue_size=32)
    make_trainer(4).fit(moco, loader)
    dino = build_method("dino", _enc(), lr=1e-3, max_steps=4, out_dim=16, hidden_dim=8,
                        bottleneck_dim=8)
    make_trainer(4).fit(dino, loader)
    for method in (moco, dino):
        assert method.skipped_steps == 1
        assert method.last_loss is not None and torch.isfinite(torch.tensor(method.last_loss))
        assert all(torch.isfinite(b.float()).all() for b in method.buffers())
    assert int(moco.queue_ptr) == 3 * 8  # three batches of 2 x 4 keys entered, not the NaN one
    moco.eval()
    assert torch.isfinite(moco.projector(moco.encoder(torch.randn(4, 1, 16, 16)))).all()


def test_dino_centre_ignores_a_non_finite_batch():
    from domainssl.methods.losses import DINOLoss

    crit = DINOLoss(3, center_momentum=0.5)
    crit.update_center(torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]))
    torch.testing.assert_close(crit.center, torch.tensor([[1.0, 1.0, 1.0]]))
    crit.update_center(torch.tensor([[float("nan"), 0.0, 0.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(crit.center, torch.tensor([[1.0, 1.0, 1.0]]))


@pytest.mark.parametrize("fused", [False, True])
def test_checkpoints_never_hold_broken_norm_statistics(make_trainer, monkeypatch, tmp_path, fused):
    # NaN in the last batch, a checkpoint after every step: the device-side guard learns of the
    # skip a step late (here only at the end of training or when the checkpoint is written),
    # and the step's checkpoint must not carry the NaN statistics the forward pass left.
    import lightning as L

    from domainssl.methods import base

    monkeypatch.setattr(base, "fused_adamw_available", lambda device: fused)
    method = build_method("byol", _enc(), lr=1e-3, max_steps=3, proj_hidden_dim=16,
                          pred_hidden_dim=16, proj_dim=8)
    saver = L.pytorch.callbacks.ModelCheckpoint(dirpath=str(tmp_path), every_n_train_steps=1,
                                                save_top_k=-1, filename="s{step}")
    make_trainer(3, enable_checkpointing=True, callbacks=[saver]).fit(
        method, _loader_with_nan(at_batch=2, n_batches=3))
    assert method.skipped_steps == 1
    assert all(torch.isfinite(b.float()).all() for b in method.buffers())
    saved = sorted(tmp_path.glob("s*.ckpt"))
    assert len(saved) == 3
    for path in saved:
        state = torch.load(path, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v.float()).all() for v in state.values()), path.name


@pytest.mark.parametrize("fused", [False, True])
def test_accumulated_gradients_skip_the_update_a_nan_micro_batch_belongs_to(make_trainer, monkeypatch, fused):
    # 3 updates of 2 micro-batches; NaN in the first micro-batch of the second update: that
    # update is skipped as a whole, the others happen, the EMA follows each real update only.
    from domainssl.methods import base

    monkeypatch.setattr(base, "fused_adamw_available", lambda device: fused)
    method = build_method("byol", _enc(), lr=1e-3, max_steps=3, proj_hidden_dim=16,
                          pred_hidden_dim=16, proj_dim=8)
    emas = []
    monkeypatch.setattr(method, "momentum_update", lambda: emas.append(method.global_step))
    make_trainer(3, accumulate_grad_batches=2).fit(method, _loader_with_nan(at_batch=2, n_batches=6))
    assert method.skipped_steps == 1
    assert all(torch.isfinite(p).all() for p in method.parameters())
    assert all(torch.isfinite(b.float()).all() for b in method.buffers())
    opt_steps = {int(s["step"]) for s in method.trainer.optimizers[0].state.values()}
    assert opt_steps == {2}
    # one EMA per update: the device-side guard cannot tell the host which one it skipped
    assert len(emas) == (3 if fused else 2)


@pytest.mark.parametrize("fused", [False, True])
def test_a_skipped_update_counts_once_however_many_micro_batches_were_bad(make_trainer, monkeypatch,
                                                                         fused):
    # both micro-batches of the second update are NaN: one skipped optimiser step, one warning
    from domainssl.methods import base

    monkeypatch.setattr(base, "fused_adamw_available", lambda device: fused)
    method = build_method("byol", _enc(), lr=1e-3, max_steps=3, proj_hidden_dim=16,
                          pred_hidden_dim=16, proj_dim=8)
    with pytest.warns(RuntimeWarning, match="non-finite") as caught:
        make_trainer(3, accumulate_grad_batches=2).fit(method, _loader_with_nan(at_batch=(2, 3),
                                                                                 n_batches=6))
    assert method.skipped_steps == 1
    assert len([w for w in caught if "non-finite" in str(w.message)]) == 1
    assert {int(s["step"]) for s in method.trainer.optimizers[0].state.values()} == {2}


def test_ema_does_not_follow_a_skipped_update(make_trainer, monkeypatch):
    from domainssl.methods import base

    monkeypatch.setattr(base, "fused_adamw_available", lambda device: False)
    method = build_method("byol", _enc(), lr=1e-3, max_steps=4, proj_hidden_dim=16,
                          pred_hidden_dim=16, proj_dim=8)
    emas = []
    monkeypatch.setattr(method, "momentum_update", lambda: emas.append(method.global_step))
    make_trainer(4).fit(method, _loader_with_nan(at_batch=1, n_batches=4))
    assert method.skipped_steps == 1 and len(emas) == 3


def test_validation_settles_a_skip_reported_late_before_scoring():
    # the device-side guard learns of a skip a step late; the kNN monitor's eval-mode features
    # must not use the NaN statistics that step left
    from domainssl.methods.monitors import DeferredStats

    method = build_method("byol", _enc(), proj_hidden_dim=16, pred_hidden_dim=16, proj_dim=8)
    bn = method.projector[1]
    bn.running_mean.fill_(float("nan"))
    method._deferred.append((DeferredStats(5, torch.tensor([float("nan"), 1.0, 0.5])), True))
    method.on_validation_start()
    assert method.skipped_steps == 1 and torch.isfinite(bn.running_mean).all()


def test_loss_is_logged_only_on_the_steps_the_loggers_write(make_trainer, monkeypatch):
    # log_every_n_steps=2 over 5 steps: the loggers write after steps 2 and 4, and the run's
    # last line reads step 5; logging on the other steps only costs host time
    method = build_method("simclr", _enc(), lr=1e-3, max_steps=5, proj_hidden_dim=16, proj_dim=8)
    logged = []
    real_log = method.log

    def spy(name, value, *args, **kwargs):
        logged.append((name, method.global_step + 1))
        return real_log(name, value, *args, **kwargs)

    monkeypatch.setattr(method, "log", spy)
    trainer = make_trainer(5, log_every_n_steps=2)
    trainer.fit(method, _loader_with_nan(at_batch=99, n_batches=5))
    assert [s for n, s in logged if n == "train/loss"] == [2, 4, 5]
    assert [s for n, s in logged if n == "train/emb_std"] == [2, 4, 5]
    assert trainer.callback_metrics["train/loss"] == pytest.approx(method.last_loss)
