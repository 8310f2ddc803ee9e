"""BYOL (Grill et al. 2020): online net + predictor regress a momentum target net's projections."""

from __future__ import annotations

from .base import SSLMethod, online_target_pass
from .heads import projection_mlp
from .losses import cosine_similarity_loss
from .momentum import copy_frozen, cosine_momentum


class BYOL(SSLMethod):
    """Online encoder -> projector -> predictor; target encoder -> projector (EMA of online,
    momentum rising from `momentum_start` to `momentum_end` on a cosine). Symmetric loss
    2 - 2 cos. views: 2 tensors (B, C, *S)."""

    method_name = "byol"

    def __init__(self, encoder, proj_hidden_dim: int = 4096, proj_dim: int = 256,
                 pred_hidden_dim: int = 4096, momentum_start: float = 0.99,
                 momentum_end: float = 1.0, **kwargs) -> None:
        super().__init__(encoder, method_hparams=dict(
            proj_hidden_dim=proj_hidden_dim, proj_dim=proj_dim,
            pred_hidden_dim=pred_hidden_dim, momentum_start=momentum_start,
            momentum_end=momentum_end), **kwargs)
        self.projector = projection_mlp(encoder.embed_dim, proj_hidden_dim, proj_dim)
        self.predictor = projection_mlp(proj_dim, pred_hidden_dim, proj_dim)
        self.target_encoder = copy_frozen(self.encoder)
        self.target_projector = copy_frozen(self.projector)

    def compile_targets(self):
        return [self.encoder, self.projector, self.predictor, self.target_encoder,
                self.target_projector]

    def method_facts(self):
        return {"momentum": [self.hparams.momentum_start, self.hparams.momentum_end],
                "proj_dim": self.hparams.proj_dim}

    def current_momentum(self) -> float:
        return cosine_momentum(self.schedule_step, self.total_steps, self.hparams.momentum_start,
                               self.hparams.momentum_end)

    def compute_loss(self, views):
        b, feats, p, z = online_target_pass(views, self.encoder, lambda f: self.predictor(self.projector(f)),
                                            self.target_encoder, self.target_projector, "BYOL")
        # view 1's prediction regresses view 2's target and vice versa
        loss = cosine_similarity_loss(p[:b], z[b:]) + cosine_similarity_loss(p[b:], z[:b])
        return loss, feats[:b]

    def momentum_update(self) -> None:
        m = self.current_momentum()
        self.ema_step(m)

    def momentum_pairs(self):
        return [(self.target_encoder, self.encoder), (self.target_projector, self.projector)]
