"""Per-modality view presets: `ct`, `mr`, `multispectral`, `rgb`, `fluorescence`.

`preset_config(name, spatial_dims, stats=None)` returns a `ViewsConfig`; recipes then override
fields with `config.apply_overrides`. Each preset is written as overrides of the defaults, so
what a preset changes is readable in one place. The choices follow the modality:

- ct: HU window(s) to [0, 1]; flips on every axis, in-plane rot90, small rotations (no canonical
  handedness is needed for SSL); mild contrast/gamma (never hue); noise and blur of a scanner.
- mr: per-scan percentile normalisation (MR intensities have no absolute unit), bias field and
  wider gamma (coil inhomogeneity, sequence contrast).
- multispectral: per-band statistics (archive p01..p99) or reflectance/10000; flips + rot90
  (nadir imagery has no up); per-band brightness/contrast/gamma, band dropout, noise, blur.
- rgb: the SimCLR/BYOL recipe (shared colour jitter, hue/saturation, grayscale, asymmetric
  blur/solarize) for real RGB images only.
- fluorescence: per-channel percentile normalisation (stains have arbitrary gains), flips and
  rot90 on every plane, channel dropout, per-channel intensity jitter.
"""

from __future__ import annotations

from typing import Any, Mapping

from .config import ViewsConfig, apply_overrides

PRESET_NAMES = ("ct", "mr", "multispectral", "rgb", "fluorescence")

# Output sizes (global, local) by spatial dims: 224/96 for 2D ViT-16 and ResNets, 96/48 for 3D.
_SIZES = {2: (224, 96), 3: (96, 48)}

_MEDICAL_COMMON: dict[str, Any] = {
    "flip_p": 0.5, "rot90_p": 0.75, "affine_p": 0.2, "rotate_deg": 10.0,
    "jitter_p": 0.8, "brightness": 0.1, "contrast": 0.2, "gamma": (0.8, 1.25), "per_channel": False,
    "noise_p": 0.2, "noise_std": (0.0, 0.05), "blur_p": 0.2, "blur_sigma": (0.25, 1.0),
}


def _preset_overrides(name: str, stats: Mapping[str, Any] | None) -> dict[str, Any]:
    if name == "ct":
        return {
            "normalise": {"mode": "window", "windows": [(40.0, 400.0)], "clip": None},
            **_MEDICAL_COMMON,
            "global": {"scale": (0.35, 1.0), "ratio": (0.8, 1.25)},
            "local": {"scale": (0.05, 0.3), "ratio": (0.8, 1.25), "affine_p": 0.0},
            "asymmetric": [{"blur_p": 0.5}, {"blur_p": 0.1, "noise_p": 0.4}],
            "slice_channels": 3,
        }
    if name == "mr":
        return {
            "normalise": {"mode": "percentile", "low": 0.5, "high": 99.5},
            **_MEDICAL_COMMON,
            "gamma": (0.7, 1.5), "bias_field_p": 0.3, "bias_field_coeff": 0.3,
            "global": {"scale": (0.35, 1.0), "ratio": (0.8, 1.25)},
            "local": {"scale": (0.05, 0.3), "ratio": (0.8, 1.25), "affine_p": 0.0},
            "asymmetric": [{"blur_p": 0.5}, {"blur_p": 0.1, "noise_p": 0.4}],
            "slice_channels": 3,
        }
    if name == "multispectral":
        norm = ({"mode": "stats_range"} if stats is not None
                else {"mode": "rule", "scale": 1e-4, "offset": 0.0})
        return {
            "normalise": norm,
            "flip_p": 0.5, "rot90_p": 0.75,
            "jitter_p": 0.8, "brightness": 0.1, "contrast": 0.2, "gamma": (0.8, 1.25),
            "per_channel": True, "channel_dropout_p": 0.2, "channel_dropout_rate": 0.2,
            "noise_p": 0.2, "noise_std": (0.0, 0.03), "blur_p": 0.2, "blur_sigma": (0.1, 1.5),
            "global": {"scale": (0.3, 1.0)},
            "local": {"scale": (0.05, 0.3)},
            "asymmetric": [{"blur_p": 0.5}, {"blur_p": 0.1, "noise_p": 0.4}],
        }
    if name == "rgb":
        norm = ({"mode": "stats_range"} if stats is not None
                else {"mode": "rule", "scale": 1 / 255, "offset": 0.0})
        return {
            "normalise": norm,
            "flip_p": 0.5, "flip_axes": (1,),  # photos have an up: horizontal flips only
            "jitter_p": 0.8, "brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1,
            "per_channel": False, "grayscale_p": 0.2, "blur_sigma": (0.1, 2.0),
            "global": {"scale": (0.25, 1.0)},
            "local": {"scale": (0.05, 0.25)},
            "asymmetric": [{"blur_p": 1.0}, {"blur_p": 0.1, "solarize_p": 0.2}],
        }
    if name == "fluorescence":
        return {
            "normalise": {"mode": "percentile", "low": 1.0, "high": 99.8},
            "flip_p": 0.5, "rot90_p": 0.75,
            "jitter_p": 0.8, "brightness": 0.1, "contrast": 0.3, "gamma": (0.8, 1.25),
            "per_channel": True, "channel_dropout_p": 0.2, "channel_dropout_rate": 0.25,
            "noise_p": 0.2, "noise_std": (0.0, 0.03), "blur_p": 0.2, "blur_sigma": (0.1, 1.0),
            "global": {"scale": (0.3, 1.0)},
            "local": {"scale": (0.05, 0.3)},
            "asymmetric": [{"blur_p": 0.5}, {"blur_p": 0.1, "noise_p": 0.4}],
        }
    raise ValueError(f"unknown view preset {name!r}; choose one of {', '.join(PRESET_NAMES)}")


def preset_config(name: str, spatial_dims: int, stats: Mapping[str, Any] | None = None) -> ViewsConfig:
    """The `ViewsConfig` of preset `name` for `spatial_dims`-D views (2 or 3)."""
    if spatial_dims not in _SIZES:
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    over = _preset_overrides(name, stats)
    g, l = _SIZES[spatial_dims]
    over["global"] = {"size": g, **over.get("global", {})}
    over["local"] = {"size": l, **over.get("local", {})}
    return apply_overrides(ViewsConfig(), over)
