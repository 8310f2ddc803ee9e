"""SimCLR (Chen et al. 2020): two views, projection MLP, NT-Xent over the whole (global) batch."""

from __future__ import annotations

import torch

from .base import SSLMethod
from .heads import projection_mlp
from .losses import nt_xent_loss


class SimCLR(SSLMethod):
    """encoder -> projection MLP -> NT-Xent. views: 2 tensors (B, C, *S) of the same images.

    Hyper-parameters: temperature (0.1 - 0.5), proj_hidden_dim, proj_dim; plus SSLMethod's.
    """

    method_name = "simclr"

    def __init__(self, encoder, temperature: float = 0.2, proj_hidden_dim: int = 2048,
                 proj_dim: int = 128, **kwargs) -> None:
        super().__init__(encoder, method_hparams=dict(
            temperature=temperature, proj_hidden_dim=proj_hidden_dim, proj_dim=proj_dim), **kwargs)
        self.projector = projection_mlp(encoder.embed_dim, proj_hidden_dim, proj_dim, num_layers=2)

    def compile_targets(self):
        return [self.encoder, self.projector]

    def method_facts(self):
        return {"temperature": self.hparams.temperature, "proj_dim": self.hparams.proj_dim}

    def compute_loss(self, views):
        if len(views) != 2:
            raise ValueError(f"SimCLR takes 2 views, got {len(views)}")
        b = views[0].shape[0]
        # One forward for both views (same shape): better GPU use and BN statistics over 2B.
        feats = self.encoder(torch.cat(views))
        z = self.projector(feats)
        loss = nt_xent_loss(z[:b], z[b:], self.hparams.temperature)
        return loss, feats[:b]
