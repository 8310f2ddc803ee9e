"""Modality-aware augmentations and SSL view generation, 2D and 3D, CPU workers and GPU batches.

Light on import: names below load their module (and torch) on first use.

CPU (DataLoader workers):  build_views(preset, kind, spatial_dims, channel_names, stats=None,
                                       overrides=None, seed=0) -> ViewGenerator; collate_views
GPU (on_after_batch_transfer): build_batch_views(...same...) -> BatchViewGenerator (nn.Module);
                                       collate_patches for the raw patches
Recipes: build_views_from_recipe / build_batch_views_from_recipe(views_block, spatial_dims=...,
         channel_names=..., stats=None, seed=0)
Functional: ct_window, ct_windows, adjust_hue, adjust_saturation, to_grayscale, is_rgb
Presets: PRESET_NAMES = ("ct", "mr", "multispectral", "rgb", "fluorescence"); preset_config.
"""

from importlib import import_module

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


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
