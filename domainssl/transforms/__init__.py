"""Modality-aware augmentations and SSL view generation, 2D and 3D, CPU workers and GPU batches.

Light on import: names below load their module (and torch) on first use.

CPU path (in DataLoader workers)::

    gen = build_views(preset, kind="two_view", spatial_dims=2, channel_names=None, stats=None,
                      overrides=None, seed=0)            # -> ViewGenerator
    gen.set_epoch(epoch); item = gen(sample)             # {"views": [(C', *S) float32], "label"?}
    batch = collate_views(items)                         # {"views": [(B, C', *S)], "label": (B,)}

GPU path (the DataLoader only collates raw patches with `collate_patches`)::

    aug = build_batch_views(...same arguments...)        # -> BatchViewGenerator (nn.Module)
    def on_after_batch_transfer(self, batch, idx):       # in the LightningModule
        if "image" in batch and "views" not in batch:
            batch = self.aug(batch)                      # {"views": [(B, C', *S)], "label"?}
        return batch

Recipes: build_views_from_recipe / build_batch_views_from_recipe(views_block, spatial_dims=...,
channel_names=..., stats=None, seed=0) with views_block = {"preset", "kind", **overrides} (see
`config` for every override). presets: PRESET_NAMES = ct, mr, multispectral, rgb, fluorescence;
kinds: KINDS = two_view (2 asymmetric views), multi_crop (2 global + n_local local, globals
first), single (MAE). `gen.output_channel_names(input_spatial_dims)` names the views' channels
(CT windows and 2.5D slabs change them) and `gen.n_views` counts them.
Functional: ct_window, ct_windows, adjust_hue, adjust_saturation, to_grayscale, is_rgb.
"""

from .._lazy import lazy_getattr


_EXPORTS = {
    "build_views": "views",
    "build_views_from_recipe": "views",
    "ViewGenerator": "views",
    "build_batch_views": "batch",
    "build_batch_views_from_recipe": "batch",
    "BatchViewGenerator": "batch",
    "collate_views": "collate",
    "collate_patches": "collate",
    "ct_window": "normalise",
    "ct_windows": "normalise",
    "Normaliser": "normalise",
    "adjust_hue": "color",
    "adjust_saturation": "color",
    "to_grayscale": "color",
    "is_rgb": "color",
    "RGBRequiredError": "color",
    "PRESET_NAMES": "presets",
    "preset_config": "presets",
    "ViewConfig": "config",
    "ViewsConfig": "config",
    "NormaliseConfig": "config",
    "apply_overrides": "config",
    "KINDS": "plan",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
