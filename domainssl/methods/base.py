"""SSLMethod: the small LightningModule base every method shares.

It owns what is the same for all methods: AdamW (fused where torch has the kernel) with a warm-up + cosine LR and a
cosine weight-decay schedule, gradient clipping, optional torch.compile, the collapse monitor and
NaN/Inf guard, online kNN accuracy on a labeled validation set, `card_facts()`, and calling an
optional GPU view generator after the batch reaches the device. Methods implement `compute_loss`.
Mixed precision is Lightning's (`precision="bf16-mixed"`); the losses cast to float32 themselves.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Sequence

import lightning as L
import numpy as np
import torch
from torch import nn

from ..models.layout import has_spatial_convs, to_channels_last
from .distributed import all_gather_objects, all_reduce_max, world_size
from .momentum import MomentumPairs
from .monitors import (CollapseMonitor, DeferredStats, ReadSkips, check_finite, embedding_std, knn_accuracy,
                       reset_broken_norm_statistics)
from .optim import fused_adamw_available
from .random_state import capture_rng, restore_rng
from .schedules import WarmupCosine, cosine_schedule


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def online_target_pass(views, encoder, online_head, target_encoder, target_head, method: str):
    """Both views of a batch through the online branch (with gradients) and the momentum target
    (without), in one forward each: the shared first half of BYOL and MoCo v3.

    Args:
        views: two tensors (B, C, *S).
    Returns:
        (B, online features (2B, D), online outputs (2B, P), target outputs (2B, P)); rows
        [:B] come from view 1 and [B:] from view 2.
    """
    if len(views) != 2:
        raise ValueError(f"{method} takes 2 views, got {len(views)}")
    x = torch.cat(views)
    feats = encoder(x)
    online = online_head(feats)
    with torch.no_grad():
        target = target_head(target_encoder(x))
    return views[0].shape[0], feats, online, target


class SSLMethod(L.LightningModule):
    """Base class. Subclasses set `method_name`, build their heads in __init__ (after calling
    super().__init__) and implement `compute_loss(views) -> (loss, embeddings)`, where embeddings
    (B, D) feed the collapse monitor. Momentum methods override `momentum_update()`.

    Hyper-parameters (all plain values, saved in checkpoints):
      lr: peak learning rate; warmup_steps, max_steps (None: from the Trainer), final_lr_ratio;
      weight_decay -> weight_decay_end (cosine; None keeps it constant), betas;
      grad_clip: max gradient norm (None: off; a Trainer's gradient_clip_val takes precedence);
      compile: False; True (or "modules") compiles the encoder and heads in place; "full"
      compiles the whole `compute_loss` as one graph (masking, gathers and loss fused with the
      network; a longer first step); collapse_threshold; nan_guard: 'skip' |
      'stop' | 'off' (with the fused AdamW of a CUDA run, 'skip' and the collapse monitor need
      no per-step host sync: a non-finite step's update is skipped on the device and reported a
      step later; 'stop' always checks before the update); knn_k: neighbours for the online kNN
      monitor.
    `batch_views`: optional nn.Module mapping {"image": (B,C,*S)} -> {"views": [...]} run on the
    device when a training batch has "image" but no "views" (not saved in checkpoints).
    `method_hparams`: the subclass's own hyper-parameters, saved with these. There is no
    catch-all **kwargs, so a misspelt option is a TypeError, not silently ignored.
    """

    method_name = "base"

    def __init__(self, encoder: nn.Module, *, lr: float = 1e-3, weight_decay: float = 0.05,
                 weight_decay_end: float | None = None, warmup_steps: int = 0,
                 max_steps: int | None = None, final_lr_ratio: float = 0.0,
                 betas: Sequence[float] = (0.9, 0.999), grad_clip: float | None = None,
                 compile: bool | str = False, collapse_threshold: float = 0.05,
                 nan_guard: str = "skip", knn_k: int = 20,
                 batch_views: nn.Module | None = None,
                 method_hparams: dict[str, Any] | None = None) -> None:
        super().__init__()
        if nan_guard not in ("skip", "stop", "off"):
            raise ValueError(f"nan_guard must be 'skip', 'stop' or 'off', got {nan_guard!r}")
        if compile not in (False, True, "modules", "full"):
            raise ValueError(f"compile must be false, true, 'modules' or 'full', got {compile!r}")
        self.encoder = encoder
        hp = dict(method=self.method_name, encoder_config=getattr(encoder, "config", None), lr=lr,
                  weight_decay=weight_decay, weight_decay_end=weight_decay_end,
                  warmup_steps=warmup_steps, max_steps=max_steps, final_lr_ratio=final_lr_ratio,
                  betas=betas, grad_clip=grad_clip, compile=compile,
                  collapse_threshold=collapse_threshold, nan_guard=nan_guard, knn_k=knn_k,
                  **(method_hparams or {}))
        # Only plain values: checkpoints must load with torch.load(weights_only=True).
        self.save_hyperparameters({k: _plain(v) for k, v in hp.items()})
        # Kept out of the module tree on purpose: the view generator is data plumbing, not model
        # state, and must not add keys to checkpoints. It is moved to the device in on_fit_start.
        self.__dict__["batch_views"] = batch_views
        self.collapse = CollapseMonitor(collapse_threshold)
        self.last_loss: float | None = None
        self.last_knn: float | None = None
        self.skipped_steps = 0    # optimiser updates skipped (not micro-batches)
        self._skipped_at: int | None = None  # the update last counted as skipped
        self.read_skips = ReadSkips()  # this rank's
        self._run_read_skips: ReadSkips | None = None  # all ranks', set at train end
        self._fused_optimizer = False
        self._found_inf: torch.Tensor | None = None  # device-side guard: skip the next update
        self._drop_grads = False  # synchronising guard: skip the next update
        self._stepped = False     # an optimiser update happened in this batch (the EMA follows)
        self._rng_to_restore: dict | None = None  # from a checkpoint, applied at fit start
        self._deferred: list[tuple[DeferredStats, bool]] = []
        self._val_feats: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []
        self._val_index: list[torch.Tensor] = []

    # ----------------------------------------------------------------- method interface
    def compute_loss(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """views: list of (B, C, *S) tensors. Returns (scalar loss, (B, D) embeddings or None)."""
        raise NotImplementedError

    def momentum_update(self) -> None:
        """Called after each optimiser update (EMA of teacher/target nets); not after one the
        synchronising NaN guard skipped, nor after a micro-batch that only accumulated."""

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(target, online) module pairs a momentum method updates by EMA; none by default."""
        return []

    def ema_step(self, momentum: float) -> None:
        """EMA of every `momentum_pairs()` target towards its online network (one fused update;
        the tensors are located once per fit, `MomentumPairs`)."""
        pairs = self.__dict__.get("_momentum_pairs")
        if pairs is None:
            pairs = self.__dict__["_momentum_pairs"] = MomentumPairs(self.momentum_pairs())
        pairs.update(momentum)

    def compile_targets(self) -> list[nn.Module]:
        """Modules compiled in place when compile=True (state_dict keys stay unchanged)."""
        return [self.encoder]

    def method_facts(self) -> dict[str, Any]:
        """Method-specific hyper-parameters for the card."""
        return {}

    # ----------------------------------------------------------------- schedules
    @property
    def schedule_step(self) -> int:
        """Optimiser updates done so far: where the weight-decay, momentum and teacher-temperature
        schedules stand. Under a Trainer, its global_step. In a hand-written loop, set it before
        each update's `compute_loss` (`method.schedule_step = step`), or the schedules stay at
        their start (BYOL/MoCo/DINO momentum, DINO's temperature warm-up)."""
        if self._trainer is not None:
            return int(self.trainer.global_step)
        return int(self.__dict__.get("_manual_step", 0))

    @schedule_step.setter
    def schedule_step(self, step: int) -> None:
        if self._trainer is not None:
            raise ValueError("schedule_step follows the Trainer's global_step while a Trainer is attached")
        if int(step) < 0:
            raise ValueError(f"schedule_step must be >= 0, got {step}")
        self.__dict__["_manual_step"] = int(step)

    @property
    def total_steps(self) -> int:
        """Length of the schedules in optimiser steps."""
        if self.hparams.max_steps:
            return int(self.hparams.max_steps)
        if self._trainer is not None:
            est = self.trainer.estimated_stepping_batches
            if est and est != float("inf"):
                return int(est)
        raise ValueError("set max_steps (in the method or the Trainer) so the LR, weight-decay and "
                         "momentum schedules know their length")

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            # Biases, norms, tokens and position tables take no weight decay (common practice).
            (no_decay if p.ndim <= 1 or name.endswith(("cls_token", "reg_token", "pos_embed",
                                                       "mask_token", "group_embed")) else decay).append(p)
        groups = [{"params": decay, "weight_decay": self.hparams.weight_decay, "apply_wd": True},
                  {"params": no_decay, "weight_decay": 0.0, "apply_wd": False}]
        # Fused AdamW where torch has it, except under fp16, where Lightning must unscale the
        # gradients before clipping.
        fused = fused_adamw_available(self.device) and not self._fp16_scaled()
        self._fused_optimizer = fused
        opt = torch.optim.AdamW(groups, lr=self.hparams.lr, betas=tuple(self.hparams.betas),
                                fused=fused or None)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, WarmupCosine(self.hparams.warmup_steps, self.total_steps, self.hparams.final_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        wd_end = self.hparams.weight_decay_end
        if wd_end is None:
            return
        wd = cosine_schedule(self.schedule_step, self.total_steps, self.hparams.weight_decay, wd_end)
        for opt in self.trainer.optimizers:
            for group in opt.param_groups:
                if group.get("apply_wd"):
                    group["weight_decay"] = wd

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None,
                                    gradient_clip_algorithm=None) -> None:
        clip = gradient_clip_val if gradient_clip_val is not None else self.hparams.grad_clip
        if not clip:
            return
        algorithm = gradient_clip_algorithm or "norm"
        if self._fp16_scaled():
            # fp16 gradients are loss-scaled: Lightning unscales them before clipping.
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm=algorithm)
            return
        # bf16 and fp32 gradients carry no scale, so clip them directly: Lightning's own clip
        # refuses a fused AdamW under any mixed precision, bf16 included.
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if algorithm == "value":
            torch.nn.utils.clip_grad_value_(params, clip)
        else:
            torch.nn.utils.clip_grad_norm_(params, clip)

    def _fp16_scaled(self) -> bool:
        """True under fp16 mixed precision, whose gradients a GradScaler scales."""
        return self._trainer is not None and str(self.trainer.precision).startswith("16")

    def configure_model(self) -> None:
        """Compile as `compile` says; idempotent (Lightning may call it more than once)."""
        mode = self.hparams.compile
        if not mode or self.__dict__.get("_compiled"):
            return
        self.__dict__["_compiled"] = True
        if mode == "full":
            # The instance attribute shadows the method; state_dict keys are unchanged.
            self.compute_loss = torch.compile(self.compute_loss, dynamic=False)
            return
        for module in self.compile_targets():
            module.compile(dynamic=False)  # few distinct crop shapes: specialise each

    # ----------------------------------------------------------------- training
    def on_fit_start(self) -> None:
        # modules may have been replaced since the last fit (SyncBatchNorm): locate them anew
        self.__dict__.pop("_momentum_pairs", None)
        if self.batch_views is not None:
            self.batch_views.to(self.device)
        self.prepare_layout()
        if self._rng_to_restore is not None:  # a resumed run goes on where it stopped
            restore_rng(self._rng_to_restore, self.device)
            self._rng_to_restore = None
        elif self.trainer.world_size > 1:
            # Every rank was seeded alike; MAE's masks (and drop-path) would then be the same on
            # every GPU for the same position in the batch. One stream per rank, as the
            # reference implementations do (seed + rank; the seed Lightning's seed_everything
            # set, so a second fit does not add the rank twice).
            seed = int(os.environ.get("PL_GLOBAL_SEED", torch.initial_seed()))
            torch.manual_seed(seed + self.global_rank)

    def on_train_start(self) -> None:
        self._fit_schedule_to_run()

    def _fit_schedule_to_run(self) -> None:
        """Make the LR schedule end at this run's last step. A resumed run gets the saved
        schedule back with the scheduler's state, built for the old run's length: resuming a
        finished 6-step run to 12 steps trained steps 7-12 at LR 0 (final_lr_ratio), while the
        weight-decay and momentum schedules followed the new length."""
        want = WarmupCosine(self.hparams.warmup_steps, self.total_steps, self.hparams.final_lr_ratio)
        for config in self.trainer.lr_scheduler_configs:
            sched = config.scheduler
            lambdas = getattr(sched, "lr_lambdas", None) or []
            stale = [fn for fn in lambdas if isinstance(fn, WarmupCosine) and vars(fn) != vars(want)]
            if not stale:
                continue
            sched.lr_lambdas = [WarmupCosine(**vars(want)) if isinstance(fn, WarmupCosine) else fn
                                for fn in lambdas]
            # the next update must already use the new schedule, not the LR the checkpoint saved
            for group, base, fn in zip(sched.optimizer.param_groups, sched.base_lrs, sched.lr_lambdas):
                group["lr"] = base * fn(sched.last_epoch)
            sched._last_lr = [group["lr"] for group in sched.optimizer.param_groups]
            if self.global_rank == 0:
                warnings.warn(f"the learning-rate schedule now ends at step {want.total_steps} "
                              f"(warm-up {want.warmup_steps}); the checkpoint's ended at step "
                              f"{stale[0].total_steps}: from step {sched.last_epoch} the LR follows "
                              f"the cosine to the new end", UserWarning, stacklevel=2)

    def prepare_layout(self) -> bool:
        """On CUDA, CNN weights go channels-last (models.layout): bf16 convolutions run on tensor
        cores without transposes. Called at fit start; a hand-written loop should call it after
        moving the method to the GPU. Returns True if the layout changed."""
        if self.device.type != "cuda" or not has_spatial_convs(self):
            return False
        return to_channels_last(self) > 0

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if (self.batch_views is not None and isinstance(batch, dict) and "image" in batch
                and "views" not in batch and self._trainer is not None and self.trainer.training):
            batch = {**batch, **self.batch_views({"image": batch["image"]})}
        return batch

    def training_step(self, batch: dict, batch_idx: int):
        self.read_skips.add(batch.get("read_skips"))
        self._settle_monitors(wait=False)  # before the forward: a repair may touch norm statistics
        views = batch["views"]
        loss, emb = self.compute_loss(views)
        step = self.global_step
        watch_collapse = emb is not None and self.collapse.threshold > 0
        bs = views[0].shape[0]
        if self.hparams.nan_guard != "off" or watch_collapse:
            # [loss, non-finite on any rank, (collapse score)]. DDP averages gradients, so one
            # rank's NaN reaches every rank's update: all ranks must skip the step together.
            bad = (~torch.isfinite(loss.detach())).float().reshape(())
            stats = [loss.detach().float().reshape(()),
                     all_reduce_max(bad) if self.hparams.nan_guard != "off" else bad]
            if watch_collapse:
                stats.append(embedding_std(emb.detach()))
            stats = torch.stack(stats)
            if self._guard_on_device():
                # No host sync: a fused AdamW skips this step's update on the device if the
                # loss is not finite (its found_inf input), and the numbers reach the host while
                # the device works on; they are reported (warning, skipped_steps, last_loss) by
                # `_settle_monitors` a step later.
                if self.hparams.nan_guard == "skip":
                    # over accumulated micro-batches: any non-finite one skips the update
                    self._found_inf = (stats[1] if self._found_inf is None
                                       else torch.maximum(self._found_inf, stats[1]))
                self._deferred.append((DeferredStats(step, stats), watch_collapse))
            # Loss and collapse score come to the host together: one device sync per step.
            elif not self._record_monitors(step, stats.tolist(), watch_collapse):
                # The update this batch belongs to is skipped (with gradient accumulation, the
                # whole accumulated one): its gradients are dropped before it, the norm
                # statistics repaired once backward has run, the EMA left out.
                self._drop_grads = True
                if world_size() == 1:
                    return None  # Lightning skips this backward
                # Lightning refuses None under DDP: every rank runs backward (DDP's gradient
                # all-reduce needs them all).
            if watch_collapse and self._logs_this_step():
                self.log("train/emb_std", stats[2], batch_size=bs)
        if self._logs_this_step():
            self.log("train/loss", loss.detach(), prog_bar=True, batch_size=bs)
        return loss

    def _logs_this_step(self) -> bool:
        """Whether the loggers write this step (Lightning's rule: every `log_every_n_steps`
        optimiser steps), or it is the last step (the run's final line reads it). Each `self.log`
        call costs about half a millisecond of Lightning bookkeeping on the host, every step,
        for values nobody reads between writes."""
        trainer = self._trainer
        if trainer is None:
            return True
        step = self.global_step + 1  # the optimiser step this batch completes
        every = int(trainer.log_every_n_steps or 0)
        return (every > 0 and step % every == 0) or step == trainer.max_steps

    def _record_monitors(self, step: int, values: list[float], watch_collapse: bool) -> bool:
        """Host-side bookkeeping of one step's [loss, non-finite on any rank, (collapse score)]:
        the NaN guard (warns, counts a skipped step, or raises for 'stop'), last loss, collapse
        monitor. Returns False for a step the guard skips."""
        if self._trainer is not None and self.global_rank != 0:
            # Every rank reaches the same verdict (the flag is all-reduced): rank 0 says it once.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return self._record_monitors_here(step, values, watch_collapse)
        return self._record_monitors_here(step, values, watch_collapse)

    def _record_monitors_here(self, step: int, values: list[float], watch_collapse: bool) -> bool:
        loss, bad = values[0], values[1] > 0
        if bad and self.hparams.nan_guard != "off":
            if step == self._skipped_at:
                return False  # another micro-batch of an update already skipped and reported
            elsewhere = math.isfinite(loss)
            check_finite(float("nan") if elsewhere else loss, step, self.hparams.nan_guard,
                         where=" (non-finite on another rank)" if elsewhere else "")
            self.skipped_steps += 1
            self._skipped_at = step
            return False
        self.last_loss = loss
        if watch_collapse:
            self.collapse.observe(values[2], step)
        return True

    def _guard_on_device(self) -> bool:
        """Monitors without a per-step host sync: needs the fused AdamW (its found_inf input
        skips an update on the device); 'stop' must halt before any update, so it syncs."""
        return self._fused_optimizer and self.hparams.nan_guard != "stop"

    def on_before_optimizer_step(self, optimizer) -> None:
        # Fused AdamW reads `found_inf` after the closure (forward + backward) has run.
        if self._found_inf is not None:
            optimizer.found_inf, self._found_inf = self._found_inf, None
        self._stepped = not self._drop_grads
        if self._drop_grads:
            # A step the synchronising guard skipped: AdamW leaves parameters without a gradient
            # (and their moments) untouched. Under fp16 the GradScaler skips it already (the
            # gradients are non-finite, or none: Lightning then skips the scaler's step), and it
            # refuses a step with no gradients at all. Backward has run: the statistics can be
            # repaired now, before any callback (ModelCheckpoint) saves them.
            if not self._fp16_scaled():
                optimizer.zero_grad(set_to_none=True)
            reset_broken_norm_statistics(self)
            self._drop_grads = False

    def _settle_monitors(self, wait: bool) -> int:
        """Record the deferred monitor numbers that have reached the host (all if `wait`); a
        skipped step's update was already skipped on the device, its norm statistics are
        repaired here. Call it only where no backward is pending (it may modify buffers the
        autograd graph saved). Returns the number of norm layers repaired."""
        repaired = 0
        while self._deferred and (wait or self._deferred[0][0].ready()):
            pending, watch_collapse = self._deferred.pop(0)
            if not self._record_monitors(pending.step, pending.values(), watch_collapse):
                repaired += reset_broken_norm_statistics(self)
        return repaired

    def on_train_end(self) -> None:
        self._settle_monitors(wait=True)
        self._run_read_skips = self._read_skips_over_ranks()

    def _read_skips_over_ranks(self) -> ReadSkips:
        """The run's read skips summed over ranks (each rank's loader skips its own files).
        A collective under DDP: call it on every rank (train end, checkpoint saves)."""
        return ReadSkips.merged(all_gather_objects(self.read_skips))

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # The EMA follows each optimiser update: not after a skipped one, not after a
        # micro-batch that only accumulated gradients.
        if self._stepped:
            self.momentum_update()
        self._stepped = False

    def on_validation_start(self) -> None:
        # A skip the device-side guard has not reported yet may have left NaN norm statistics,
        # which the kNN monitor's eval-mode features would use; no backward is pending here.
        self._settle_monitors(wait=True)

    # ----------------------------------------------------------------- online kNN monitor
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """A labeled batch {"image" (or "views"), "label", optional "index"}: collect encoder
        features for kNN. With "index" (each image's position in the labeled set), images that
        a distributed sampler gave to two ranks (it pads shards to equal length) count once."""
        if "label" not in batch:
            return
        x = batch["image"] if "image" in batch else batch["views"][0]
        self._val_feats.append(self.encoder(x).float())
        self._val_labels.append(batch["label"])
        if "index" in batch:
            self._val_index.append(batch["index"])

    def on_validation_epoch_end(self) -> None:
        if not self._val_feats:
            return
        feats = self.all_gather(torch.cat(self._val_feats)).reshape(-1, self._val_feats[0].shape[-1])
        labels = self.all_gather(torch.cat(self._val_labels)).reshape(-1)
        if len(self._val_index) == len(self._val_feats):
            index = self.all_gather(torch.cat(self._val_index)).reshape(-1)
            _, first = np.unique(index.cpu().numpy(), return_index=True)
            keep = torch.as_tensor(first, device=feats.device)
            feats, labels = feats[keep], labels[keep]
        self._val_feats, self._val_labels, self._val_index = [], [], []
        self.last_knn = knn_accuracy(feats, labels, k=self.hparams.knn_k)
        self.log("val/knn_acc", self.last_knn, prog_bar=True, rank_zero_only=True)

    # ----------------------------------------------------------------- facts and checkpoints
    def card_facts(self) -> dict[str, Any]:
        """Plain facts for the encoder card: method, key hyper-parameters, last monitor values."""
        self._settle_monitors(wait=True)
        hp = dict(self.hparams)
        return {
            "method": self.method_name,
            "encoder": hp.pop("encoder_config", None),
            "hparams": {k: v for k, v in hp.items() if k != "method"},
            "method_facts": self.method_facts(),
            "global_step": int(self.global_step) if self._trainer is not None else None,
            "last_loss": self.last_loss,
            "emb_std": self.collapse.last,
            "collapse_warnings": self.collapse.tripped,
            "knn_acc": self.last_knn,
            "skipped_steps": self.skipped_steps,
            "read_skips": (self._run_read_skips or self.read_skips).facts(),
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self._settle_monitors(wait=True) and "state_dict" in checkpoint:
            # A skip found only now (the device-side guard reports a step late): the state dict
            # was taken before this hook, with the broken statistics in it.
            repaired = self.state_dict()
            for key in checkpoint["state_dict"]:
                if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
                    checkpoint["state_dict"][key] = repaired[key]
        checkpoint["domainssl_monitors"] = {
            "last_loss": self.last_loss, "last_knn": self.last_knn,
            "skipped_steps": self.skipped_steps, "emb_std": self.collapse.last,
            "collapse_warnings": self.collapse.tripped,
            "read_skips": self._read_skips_over_ranks().facts()}
        # every rank's generators (a collective: every rank saves), and where the GPU view
        # generator's stream stands, so that resuming draws what an uninterrupted run would
        checkpoint["domainssl_rng"] = all_gather_objects(capture_rng(self.device))
        if self.batch_views is not None:
            checkpoint["domainssl_views"] = {"epoch": int(self.batch_views.epoch),
                                             "counter": int(self.batch_views._counter)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        m = checkpoint.get("domainssl_monitors") or {}
        self.last_loss, self.last_knn = m.get("last_loss"), m.get("last_knn")
        self.skipped_steps = int(m.get("skipped_steps") or 0)
        # The saved count is the sum over ranks: one rank carries it on, or resuming would count
        # it once per rank.
        self.read_skips = ReadSkips.from_facts(m.get("read_skips") if self.global_rank == 0 else None)
        self.collapse.last, self.collapse.tripped = m.get("emb_std"), int(m.get("collapse_warnings") or 0)
        # Only a fit resumes the generators (not from_checkpoint, validate or test), and only
        # on the same number of processes: otherwise the streams do not map, fit start seeds.
        states = checkpoint.get("domainssl_rng") or []
        fitting = self._trainer is not None and self.trainer.state.fn == "fit"
        mine = self.global_rank if fitting and len(states) == self.trainer.world_size else None
        self._rng_to_restore = states[mine] if mine is not None and mine < len(states) else None
        views = checkpoint.get("domainssl_views")
        if views and self.batch_views is not None:
            self.batch_views.epoch, self.batch_views._counter = views["epoch"], views["counter"]
