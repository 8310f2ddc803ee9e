"""Momentum (EMA) updates as free functions, and the cosine momentum schedule."""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn


@torch.no_grad()
def ema_update(target: Iterable[torch.Tensor], online: Iterable[torch.Tensor], momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online, for every pair of tensors.

    One fused multi-tensor op (torch._foreach_lerp_) instead of a Python loop per parameter,
    which is what made per-parameter EMA loops slow on GPUs.
    """
    target, online = list(target), list(online)
    if len(target) != len(online):
        raise ValueError(f"EMA needs matching tensors: {len(target)} targets, {len(online)} online")
    if target:
        torch._foreach_lerp_(target, [o.detach() for o in online], 1.0 - momentum)


@torch.no_grad()
def update_momentum(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """EMA of `online`'s parameters into `target`'s (same architecture); buffers are copied
    (BatchNorm running statistics follow the online network)."""
    ema_update(list(target.parameters()), list(online.parameters()), momentum)
    tb, ob = list(target.buffers()), list(online.buffers())
    if tb:
        torch._foreach_copy_(tb, ob)


def copy_frozen(module: nn.Module) -> nn.Module:
    """A deep copy of `module` with gradients switched off: the start of a momentum/teacher net."""
    import copy

    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


def cosine_momentum(step: int, max_steps: int, start: float = 0.996, end: float = 1.0) -> float:
    """Momentum rising from `start` to `end` along a half cosine over `max_steps` (BYOL, DINO)."""
    if max_steps <= 0:
        return end
    frac = min(max(step / max_steps, 0.0), 1.0)
    return end - (end - start) * (math.cos(math.pi * frac) + 1) / 2
