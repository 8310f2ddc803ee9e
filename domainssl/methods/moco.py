"""MoCo v3 (Chen, Xie, He 2021), with the MoCo v2 queue of negatives as an option."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import SSLMethod, online_target_pass
from .distributed import gather_no_grad
from .heads import projection_mlp
from .losses import info_nce_loss
from .momentum import copy_frozen, cosine_momentum


class MoCoV3(SSLMethod):
    """Query net (encoder -> projector -> predictor) against a momentum key net
    (encoder -> projector), symmetric InfoNCE over the two views.

    queue_size > 0 switches to MoCo v2-style negatives: a FIFO buffer of past keys (saved in
    checkpoints) instead of the other keys of the batch. views: 2 tensors (B, C, *S).
    """

    method_name = "mocov3"

    def __init__(self, encoder, temperature: float = 0.2, proj_hidden_dim: int = 4096,
                 proj_dim: int = 256, pred_hidden_dim: int = 4096, momentum_start: float = 0.99,
                 momentum_end: float = 1.0, queue_size: int = 0, **kwargs) -> None:
        super().__init__(encoder, method_hparams=dict(
            temperature=temperature, proj_hidden_dim=proj_hidden_dim, proj_dim=proj_dim,
            pred_hidden_dim=pred_hidden_dim, momentum_start=momentum_start,
            momentum_end=momentum_end, queue_size=queue_size), **kwargs)
        self.projector = projection_mlp(encoder.embed_dim, proj_hidden_dim, proj_dim, num_layers=3,
                                        last_bn=True)
        self.predictor = projection_mlp(proj_dim, pred_hidden_dim, proj_dim, num_layers=2)
        self.momentum_encoder = copy_frozen(self.encoder)
        self.momentum_projector = copy_frozen(self.projector)
        if queue_size > 0:
            self.register_buffer("queue", F.normalize(torch.randn(queue_size, proj_dim), dim=1))
            self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        else:
            self.queue = None

    def compile_targets(self):
        return [self.encoder, self.projector, self.predictor, self.momentum_encoder,
                self.momentum_projector]

    def method_facts(self):
        return {"temperature": self.hparams.temperature, "queue_size": self.hparams.queue_size,
                "momentum": [self.hparams.momentum_start, self.hparams.momentum_end]}

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        """Write L2-normalised keys (B, D), gathered from all ranks, over the oldest entries.
        Keys with a NaN/Inf anywhere leave the queue unchanged (decided on the device, no host
        sync): the NaN guard skips such a step, and a poisoned queue would make every later
        loss NaN."""
        keys = F.normalize(gather_no_grad(keys.float()), dim=1)
        size = self.queue.shape[0]
        keys = keys[-size:]  # a batch larger than the queue keeps only its newest keys
        n = keys.shape[0]
        ok = torch.isfinite(keys).all()
        idx = (self.queue_ptr + torch.arange(n, device=keys.device)) % size
        self.queue[idx] = torch.where(ok, keys.to(self.queue.dtype), self.queue[idx])
        self.queue_ptr.copy_(torch.where(ok, (self.queue_ptr + n) % size, self.queue_ptr))

    def compute_loss(self, views):
        b, feats, q, k = online_target_pass(views, self.encoder, lambda f: self.predictor(self.projector(f)),
                                            self.momentum_encoder, self.momentum_projector, "MoCo")
        t = self.hparams.temperature
        queue = self.queue.clone() if self.queue is not None else None
        loss = (info_nce_loss(q[:b], k[b:], t, queue=queue)
                + info_nce_loss(q[b:], k[:b], t, queue=queue))
        if self.queue is not None and self.training:
            self._enqueue(k)
        return loss, feats[:b]

    def momentum_update(self) -> None:
        m = cosine_momentum(self.schedule_step, self.total_steps, self.hparams.momentum_start,
                            self.hparams.momentum_end)
        self.ema_step(m)

    def momentum_pairs(self):
        return [(self.momentum_encoder, self.encoder), (self.momentum_projector, self.projector)]
