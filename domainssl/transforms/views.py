"""CPU view generators: one sample dict in, its SSL views out (run inside DataLoader workers).

Entry points (recipes call these with their `views:` block)::

    build_views(preset, kind="two_view", spatial_dims=2, channel_names=None, stats=None,
                overrides=None, seed=0) -> ViewGenerator
    build_views_from_recipe(views: Mapping, *, spatial_dims, channel_names, stats=None, seed=0)
        -> ViewGenerator          # views = {"preset": ..., "kind": ..., **overrides}

    gen = build_views("multispectral", "multi_crop", 2, channel_names=bands, stats=stats)
    gen.set_epoch(epoch)          # call at the start of every epoch
    item = gen(sample)            # {"views": [float32 tensors (C', *S)], "label": int?}

`sample` follows the data contract: `image` float32 (C, Y, X) or (C, Z, Y, X) in physical units,
`channel_names`, `spacing` per spatial axis, optional `mask` (True = valid), `label`, `index`.
Randomness is keyed by (seed, epoch, index) - see `seeding`. DataLoader workers hold copies of the
generator: with `persistent_workers=True` a later `set_epoch` in the main process does not reach
them, so there let the dataset put `epoch` into the sample (it wins over `set_epoch`).
kind: "two_view" (2 asymmetric global views), "multi_crop" (2 global + n_local local views,
globals first), "single" (one view, MAE). 2D views from 3D samples are 2.5D slabs
(`slice_channels` adjacent slices as channels). `gen.output_channel_names(input_dims)` gives the
views' channel names (CT windows and slabs change them).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .intensity import apply_intensity
from .params import sample_view_params
from .plan import SeededViews, ViewPlan, resolve_config
from .seeding import sample_rng, torch_generator
from .spatial import crop_resize, grid_views, slab_single


def _as_tensor(image):
    import torch

    if isinstance(image, torch.Tensor):
        return image.detach().to("cpu", torch.float32)
    arr = np.asarray(image)
    if arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    return torch.from_numpy(arr)


def _valid_mask(image, mask):
    """(*S) bool of valid pixels (mask and finite in every channel), or None when all are."""
    import torch

    valid = None if mask is None else torch.as_tensor(np.asarray(mask), dtype=torch.bool)
    # A finite sum proves every value finite at a tenth of the cost of isfinite on every voxel;
    # only a non-finite sum (NaN nodata, or an overflow) pays for the full check.
    if not bool(torch.isfinite(image.sum())):
        finite = torch.isfinite(image).all(0)
        valid = finite if valid is None else valid & finite
    if valid is not None and bool(valid.all()):
        return None
    return valid


class ViewGenerator(SeededViews):
    """Seeded per-sample view generator; see the module docstring for the call contract."""

    def __init__(self, plan: ViewPlan, seed: int = 0):
        self._start(plan, seed)

    def __call__(self, sample: Mapping[str, Any]) -> dict:
        import torch

        plan = self.plan
        x = _as_tensor(sample["image"])
        in_dims = x.ndim - 1
        if in_dims not in (2, 3):
            raise ValueError(f"sample image must be channel-first (C, Y, X) or (C, Z, Y, X), got shape {tuple(x.shape)}")
        names = sample.get("channel_names")
        if names is not None and [str(c) for c in names] != plan.channel_names:
            raise ValueError(f"sample channels {list(names)} differ from the generator's "
                             f"{plan.channel_names}; build the generator for this archive's channels")
        if x.shape[0] != len(plan.channel_names):
            raise ValueError(f"image has {x.shape[0]} channel(s), the generator expects {len(plan.channel_names)}")
        slab = plan.slab_depth(in_dims)
        spacing = sample.get("spacing")
        spacing = np.asarray((1.0,) * in_dims if spacing is None else spacing, float).ravel()
        if spacing.size != in_dims:
            raise ValueError(f"spacing {tuple(spacing)} has {spacing.size} values for {in_dims} spatial axes")

        index = sample.get("index")
        epoch = int(sample.get("epoch", self.epoch))
        rng = sample_rng(self.seed, epoch, None if index is None else int(index), self._counter)
        self._counter += 1
        gen = torch_generator(rng)

        valid = _valid_mask(x, sample.get("mask"))
        filled, a, b = plan.normaliser.fit_and_fill(x[None], None if valid is None else valid[None])
        x = filled[0]
        if slab is not None:
            axis = plan.config.slice_axis
            depth = x.shape[1 + axis]
            if depth < slab:
                raise ValueError(f"the patch has {depth} slices along axis {axis}, fewer than "
                                 f"slice_channels={slab}")
            plane = tuple(s for i, s in enumerate(x.shape[1:]) if i != axis)
            plane_spacing = np.delete(spacing, axis)
            a, b = a.repeat_interleave(slab, 1), b.repeat_interleave(slab, 1)
        else:
            plane, plane_spacing = tuple(x.shape[1:]), spacing
        n_out = a.shape[1] * a.shape[2]

        views = []
        for cfg, count in plan.groups:
            size = cfg.sizes(plan.spatial_dims)
            params = sample_view_params(rng, count, cfg, plane, plane_spacing, n_out,
                                        None if slab is None else depth - slab + 1)
            for i in range(count):
                p = params.row(i)
                src = x if slab is None else slab_single(x, int(p.slice_start[0]), slab, plan.config.slice_axis)
                if p.deformed[0]:
                    v = grid_views(src[None], p, size)
                else:
                    v = crop_resize(src, p, size)
                v = plan.normaliser.apply(v, a, b)
                v = apply_intensity(v, p, gen, blur_backend="cv2")
                views.append(v[0])
        out: dict[str, Any] = {"views": views}
        if sample.get("label") is not None:
            out["label"] = int(sample["label"])
        return out


def build_views(preset: str, kind: str = "two_view", spatial_dims: int = 2,
                channel_names: Sequence[str] | None = None, stats: Mapping[str, Any] | None = None,
                overrides: Mapping[str, Any] | None = None, seed: int = 0) -> ViewGenerator:
    """CPU view generator for `preset` (ct, mr, multispectral, rgb, fluorescence).

    kind: "two_view" | "multi_crop" | "single"; spatial_dims: 2 or 3 (of the views);
    channel_names: the samples' channel names (stats are matched to them by name);
    stats: archive statistics {"channel_names", "mean", "std", "p01", "p99"} (physical units);
    overrides: recipe overrides (see `domainssl.transforms.config`); seed: base seed.
    """
    config = resolve_config(preset, spatial_dims, stats, overrides)
    return ViewGenerator(ViewPlan(config, kind, spatial_dims, channel_names or [], stats), seed)


def build_views_from_recipe(views: Mapping[str, Any], *, spatial_dims: int, channel_names: Sequence[str],
                            stats: Mapping[str, Any] | None = None, seed: int = 0) -> ViewGenerator:
    """`build_views` from a recipe's `views:` block {"preset", "kind", **overrides}."""
    if "preset" not in views:
        raise ValueError("the recipe's views block needs a preset (ct, mr, multispectral, rgb, fluorescence)")
    return build_views(views["preset"], views.get("kind", "two_view"), spatial_dims, channel_names,
                       stats, views, seed)
