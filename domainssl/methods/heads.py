"""Projection / prediction heads used by the methods (small MLPs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def projection_mlp(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2,
                   batch_norm: bool = True, last_bn: bool = False) -> nn.Sequential:
    """Linear(-BN)-ReLU blocks ending in Linear (optionally a BatchNorm without affine, as in
    MoCo v3's projector). (B, in_dim) -> (B, out_dim)."""
    if num_layers < 1:
        raise ValueError("a head needs at least one layer")
    layers: list[nn.Module] = []
    dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
    for i in range(num_layers):
        last = i == num_layers - 1
        has_bn = last_bn if last else batch_norm
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=not has_bn))  # BN makes a bias redundant
        if not last:
            if batch_norm:
                layers.append(nn.BatchNorm1d(dims[i + 1]))
            layers.append(nn.ReLU(inplace=True))
        elif last_bn:
            layers.append(nn.BatchNorm1d(dims[i + 1], affine=False))
    return nn.Sequential(*layers)


class CosineLinear(nn.Module):
    """Linear layer with rows normalised to unit length and no bias: DINO's weight-normalised last
    layer with its gain frozen at 1. Normalising in forward is one cheap op; torch's weight_norm
    parametrisation would add a per-call reparametrisation and an extra parameter for nothing."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, F.normalize(self.weight, dim=1))


class DINOHead(nn.Module):
    """DINO projection head: MLP (GELU) -> bottleneck -> L2 normalise -> cosine layer to out_dim.

    (B, in_dim) -> (B, out_dim) logits (prototype scores)."""

    def __init__(self, in_dim: int, out_dim: int = 65536, hidden_dim: int = 2048,
                 bottleneck_dim: int = 256, num_layers: int = 3) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [bottleneck_dim]
        layers: list[nn.Module] = []
        for i in range(num_layers):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < num_layers - 1:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = CosineLinear(bottleneck_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))
