"""GPU batch path: the same views computed on a whole batch already on the device.

Entry point::

    build_batch_views(preset, kind="two_view", spatial_dims=2, channel_names=None, stats=None,
                      overrides=None, seed=0) -> BatchViewGenerator (a torch.nn.Module)

    aug = build_batch_views("ct", "two_view", 3, channel_names=["CT"])
    aug.set_epoch(epoch)
    out = aug({"image": x})      # x (B, C, *S) float on any device, physical units
    out["views"]                 # list of (B, C', *size) tensors, globals first, then locals

The batch may also hold `mask` (B, *S) bool (True = valid), `spacing` (B, d) and `label`
(passed through). A LightningModule calls it from `on_after_batch_transfer` when the batch has
"image" but no "views"; the DataLoader then only collates raw patches (`collate_patches`).

Per-sample parameters are drawn with the very sampler the CPU generator uses (numpy, a few
hundred numbers per batch, shipped to the device), so the CPU and GPU paths agree in
distribution by construction; pixels are processed with one grid_sample per view and the shared
batched intensity ops, all torch.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .intensity import apply_intensity
from .params import sample_view_params
from .plan import SeededViews, ViewPlan, resolve_config
from .seeding import batch_rng, torch_generator
from .spatial import grid_views, slab_batch


class BatchViewGenerator(SeededViews, torch.nn.Module):
    """Batched, seeded view generation on any device (no learnable parameters)."""

    def __init__(self, plan: ViewPlan, seed: int = 0):
        super().__init__()
        self._start(plan, seed)  # views are keyed by seed, epoch, rank and batch count

    @torch.no_grad()
    def forward(self, batch: Mapping[str, Any]) -> dict:
        plan = self.plan
        x = batch["image"]
        if x.ndim not in (4, 5):
            raise ValueError(f"batch image must be (B, C, Y, X) or (B, C, Z, Y, X), got {tuple(x.shape)}")
        x = x.float()
        bsz, in_dims = x.shape[0], x.ndim - 2
        if x.shape[1] != len(plan.channel_names):
            raise ValueError(f"batch has {x.shape[1]} channel(s), the generator expects {len(plan.channel_names)}")
        slab = plan.slab_depth(in_dims)
        spacing = batch.get("spacing")
        spacing = (np.ones((bsz, in_dims)) if spacing is None
                   else np.asarray(torch.as_tensor(spacing).detach().cpu(), float).reshape(bsz, in_dims))

        rng = batch_rng(self.seed, self.epoch, self._counter)
        self._counter += 1
        gen = torch_generator(rng, x.device)

        valid = batch.get("mask")
        valid = None if valid is None else valid.to(device=x.device, dtype=torch.bool)
        if not bool(torch.isfinite(x.sum())):  # a finite sum proves every value finite
            finite = torch.isfinite(x).all(1)
            valid = finite if valid is None else valid & finite
        x, a, b = plan.normaliser.fit_and_fill(x, valid)
        axis = plan.config.slice_axis
        if slab is not None:
            depth = x.shape[2 + axis]
            if depth < slab:
                raise ValueError(f"the patches have {depth} slices along axis {axis}, fewer than "
                                 f"slice_channels={slab}")
            plane = tuple(s for i, s in enumerate(x.shape[2:]) if i != axis)
            plane_spacing = np.delete(spacing, axis, 1)
            a, b = a.repeat_interleave(slab, 1), b.repeat_interleave(slab, 1)
        else:
            plane, plane_spacing = tuple(x.shape[2:]), spacing
        n_out = a.shape[1] * a.shape[2]

        views = []
        for cfg, count in plan.groups:
            size = cfg.sizes(plan.spatial_dims)
            for _ in range(count):
                p = sample_view_params(rng, bsz, cfg, plane, plane_spacing, n_out,
                                       None if slab is None else depth - slab + 1)
                src = x if slab is None else slab_batch(x, p.slice_start, slab, axis)
                v = grid_views(src, p, size)
                v = plan.normaliser.apply(v, a, b)
                views.append(apply_intensity(v, p, gen, blur_backend="torch"))
        out: dict[str, Any] = {"views": views}
        if batch.get("label") is not None:
            out["label"] = batch["label"]
        return out


def build_batch_views(preset: str, kind: str = "two_view", spatial_dims: int = 2,
                      channel_names: Sequence[str] | None = None, stats: Mapping[str, Any] | None = None,
                      overrides: Mapping[str, Any] | None = None, seed: int = 0) -> BatchViewGenerator:
    """GPU batch view module for `preset`; arguments exactly as `build_views`."""
    config = resolve_config(preset, spatial_dims, stats, overrides)
    return BatchViewGenerator(ViewPlan(config, kind, spatial_dims, channel_names or [], stats), seed)


def build_batch_views_from_recipe(views: Mapping[str, Any], *, spatial_dims: int, channel_names: Sequence[str],
                                  stats: Mapping[str, Any] | None = None, seed: int = 0) -> BatchViewGenerator:
    """`build_batch_views` from a recipe's `views:` block {"preset", "kind", **overrides}."""
    if "preset" not in views:
        raise ValueError("the recipe's views block needs a preset (ct, mr, multispectral, rgb, fluorescence)")
    return build_batch_views(views["preset"], views.get("kind", "two_view"), spatial_dims, channel_names,
                             stats, views, seed)
