"""View configuration: every field a recipe may set, validated, with field-by-field overrides.

A recipe's `views:` block is a preset name, a view-generator kind and overrides, e.g.::

    views:
      preset: ct            # ct | mr | multispectral | rgb | fluorescence
      kind: multi_crop      # two_view | multi_crop | single
      n_local: 6
      noise_p: 0.5          # a ViewConfig field at top level applies to every view
      global: {size: 96}    # ... or only to the global views
      local: {size: 48, scale: [0.05, 0.3]}
      normalise: {mode: window, windows: [[40, 400], [-600, 1500]]}
      asymmetric: [{blur_p: 1.0}, {blur_p: 0.1, solarize_p: 0.2}]   # per global view

`apply_overrides(config, overrides)` merges such a dict into a `ViewsConfig`; unknown keys are
errors that name the valid ones, so a typo in a recipe never passes silently. A field set at
top level or under `global` also replaces the preset's `asymmetric` value for that field
(`noise_p: 0` means no noise in any view); `asymmetric` given in the overrides replaces both.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

Range = tuple[float, float]

NORMALISE_MODES = ("none", "rule", "zscore", "stats_range", "percentile", "window")


@dataclass(frozen=True)
class ViewConfig:
    """Random augmentation of one view. Probabilities are per view; ranges are (low, high).

    Crop (exactly one rule applies, first match wins):
      extent: physical side length range of the crop, in the sample's spacing units
        (e.g. metres for a 10 m Sentinel-2 patch: (640, 2240) gives 64..224 px crops).
      target_spacing: output spacing per spatial axis (e.g. mm); the crop covers
        `size * target_spacing / zoom` physical units, so views are resampled to that spacing.
      scale: area (2D) or volume (3D) fraction of the input patch.
    ratio: aspect ratio range of the crop (log-uniform per axis, product 1).
    size: output spatial size (int for every axis, or one per axis).
    Orientation: flip_p per axis in flip_axes (None = every spatial axis); rot90_p: probability of
      a rotation by 90/180/270 degrees in the last two spatial axes (0.75 = uniform over 4).
    Small deformation: affine_p with rotate_deg (max rotation about each axis, degrees);
      elastic_p with elastic_magnitude (output pixels) on an elastic_grid^d control grid.
    Intensity (applied after normalisation, in normalised units):
      jitter_p gates brightness (+-additive), contrast (1 +- relative, about the view mean),
      gamma (range, on the view's min..max) and the RGB-only hue/saturation; per_channel draws
      one factor per channel (bands) instead of one per view.
      bias_field_p/bias_field_coeff: smooth multiplicative field (MR), degree-3 polynomial.
      channel_dropout_p gates dropping each channel with channel_dropout_rate (never all).
      noise_p/noise_std: additive Gaussian noise; blur_p/blur_sigma: Gaussian blur (pixels).
      solarize_p/solarize_threshold: x -> 1 - x above the threshold (data in [0, 1]).
      hue (fraction of a turn), saturation (relative), grayscale_p: RGB only.
    """

    size: tuple[int, ...] = (224,)
    scale: Range = (0.4, 1.0)
    ratio: Range = (3 / 4, 4 / 3)
    extent: Range | None = None
    target_spacing: tuple[float, ...] | None = None
    zoom: Range = (1.0, 1.0)
    flip_p: float = 0.5
    flip_axes: tuple[int, ...] | None = None
    rot90_p: float = 0.0
    affine_p: float = 0.0
    rotate_deg: float = 0.0
    elastic_p: float = 0.0
    elastic_magnitude: float = 0.0
    elastic_grid: int = 5
    jitter_p: float = 0.8
    brightness: float = 0.0
    contrast: float = 0.0
    gamma: Range = (1.0, 1.0)
    per_channel: bool = True
    bias_field_p: float = 0.0
    bias_field_coeff: float = 0.0
    channel_dropout_p: float = 0.0
    channel_dropout_rate: float = 0.25
    noise_p: float = 0.0
    noise_std: Range = (0.0, 0.0)
    blur_p: float = 0.0
    blur_sigma: Range = (0.1, 2.0)
    solarize_p: float = 0.0
    solarize_threshold: float = 0.5
    hue: float = 0.0
    saturation: float = 0.0
    grayscale_p: float = 0.0

    def sizes(self, spatial_dims: int) -> tuple[int, ...]:
        """Output size per spatial axis (an int size is repeated over `spatial_dims` axes)."""
        if len(self.size) == 1:
            return self.size * spatial_dims
        if len(self.size) != spatial_dims:
            raise ValueError(f"view size {self.size} has {len(self.size)} axes but the views are "
                             f"{spatial_dims}D; give one size or {spatial_dims}")
        return self.size

    @property
    def uses_rgb(self) -> bool:
        """True when an RGB-only operation (hue, saturation, grayscale) is switched on."""
        return self.hue > 0 or self.saturation > 0 or self.grayscale_p > 0


@dataclass(frozen=True)
class NormaliseConfig:
    """Map physical values (HU, reflectance, counts) to network units, once per sample.

    mode:
      none: leave values as they are.
      rule: x * scale + offset, a declared rule (e.g. reflectance / 10000: scale=1e-4).
      zscore: (x - mean) / std per channel from archive statistics.
      stats_range: (x - p01) / (p99 - p01) per channel from archive statistics.
      percentile: (x - P_low) / (P_high - P_low) per sample and channel (microscopy, MR).
      window: CT windows (level, width) in HU mapped to [0, 1] and clipped; several windows
        become several channels.
    clip: optional (low, high) applied after the mapping.
    Invalid pixels (mask False, NaN, inf) become 0 after normalisation.
    """

    mode: str = "none"
    scale: float = 1.0
    offset: float = 0.0
    low: float = 1.0
    high: float = 99.0
    windows: tuple[tuple[float, float], ...] = ((40.0, 400.0),)
    clip: Range | None = None


@dataclass(frozen=True)
class ViewsConfig:
    """A full view recipe: normalisation, global and local view configs and the layout.

    n_local: local crops for `multi_crop`. asymmetric: overrides for global view 1 and 2
    (BYOL-style asymmetric blur/solarize). slice_channels/slice_axis: when 2D views are cut
    from 3D samples, that many adjacent slices along slice_axis (a spatial axis) become channels.
    """

    normalise: NormaliseConfig = field(default_factory=NormaliseConfig)
    global_view: ViewConfig = field(default_factory=ViewConfig)
    local_view: ViewConfig = field(default_factory=lambda: ViewConfig(size=(96,), scale=(0.05, 0.4)))
    n_local: int = 10
    asymmetric: tuple[Mapping[str, Any], Mapping[str, Any]] = ({}, {})
    slice_channels: int = 1
    slice_axis: int = 0


_VIEW_FIELDS = {f.name for f in fields(ViewConfig)}
_NORM_FIELDS = {f.name for f in fields(NormaliseConfig)}
_TOP_KEYS = {"global", "local", "normalise", "n_local", "asymmetric", "slice_channels", "slice_axis"}
_PROBABILITIES = {n for n in _VIEW_FIELDS if n.endswith("_p")} | {"channel_dropout_rate"}
_RANGES = {"scale", "ratio", "extent", "zoom", "gamma", "noise_std", "blur_sigma"}
_POSITIVE_RANGES = {"scale", "ratio", "extent", "zoom", "gamma"}
_MAGNITUDES = {"brightness", "contrast", "hue", "saturation", "rotate_deg", "elastic_magnitude",
               "bias_field_coeff"}


def _unknown(key: str, valid: set[str], where: str) -> ValueError:
    close = difflib.get_close_matches(key, sorted(valid), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ValueError(f"unknown {where} option {key!r}{hint}; valid options: {', '.join(sorted(valid))}")


def _coerce_view_value(name: str, value: Any) -> Any:
    """YAML gives lists and ints; the dataclasses hold tuples and floats."""
    if value is None:
        return None
    if name == "size":
        sizes = (value,) if isinstance(value, int) else tuple(value)
        if not sizes or any(int(s) < 1 for s in sizes):
            raise ValueError(f"view size must be positive integers, got {value!r}")
        return tuple(int(s) for s in sizes)
    if name in ("target_spacing",):
        return tuple(float(v) for v in value)
    if name == "flip_axes":
        return tuple(int(v) for v in value)
    if name in _RANGES:
        lo, hi = (float(v) for v in value)
        if lo > hi:
            raise ValueError(f"{name} range must be (low, high) with low <= high, got {value!r}")
        if name in _POSITIVE_RANGES and lo <= 0:
            raise ValueError(f"{name} range must be positive, got {value!r}")
        if name in ("noise_std", "blur_sigma") and lo < 0:
            raise ValueError(f"{name} range must be >= 0, got {value!r}")
        return (lo, hi)
    if name in _PROBABILITIES:
        p = float(value)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} is a probability and must lie in [0, 1], got {value!r}")
        return p
    if name == "per_channel":
        return bool(value)
    if name == "elastic_grid":
        if int(value) < 2:
            raise ValueError(f"elastic_grid must be >= 2 control points per axis, got {value!r}")
        return int(value)
    number = float(value)
    if name in _MAGNITUDES and number < 0:
        raise ValueError(f"{name} is a magnitude and must be >= 0, got {value!r}")
    if name == "contrast" and number >= 1:
        raise ValueError(f"contrast must be < 1 (factors 1 +- contrast stay positive), got {value!r}")
    return number


def update_view(view: ViewConfig, overrides: Mapping[str, Any], where: str = "view") -> ViewConfig:
    """Return `view` with the fields in `overrides` replaced (validated and coerced)."""
    changes = {}
    for key, value in overrides.items():
        if key not in _VIEW_FIELDS:
            raise _unknown(key, _VIEW_FIELDS, where)
        changes[key] = _coerce_view_value(key, value)
    return replace(view, **changes)


def update_normalise(norm: NormaliseConfig, overrides: Mapping[str, Any] | str) -> NormaliseConfig:
    """Return `norm` updated from a dict (or a bare mode name)."""
    if isinstance(overrides, str):
        overrides = {"mode": overrides}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in _NORM_FIELDS:
            raise _unknown(key, _NORM_FIELDS, "normalise")
        if key == "mode":
            if value not in NORMALISE_MODES:
                raise ValueError(f"normalise mode {value!r} is not one of {', '.join(NORMALISE_MODES)}")
            changes[key] = value
        elif key == "windows":
            wins = tuple((float(lv), float(wd)) for lv, wd in value)
            if not wins or any(wd <= 0 for _, wd in wins):
                raise ValueError(f"CT windows are (level, width) pairs with width > 0, got {value!r}")
            changes[key] = wins
        elif key == "clip":
            changes[key] = None if value is None else tuple(float(v) for v in value)
        else:
            changes[key] = float(value)
    return replace(norm, **changes)


def apply_overrides(config: ViewsConfig, overrides: Mapping[str, Any] | None) -> ViewsConfig:
    """Merge a recipe's `views:` overrides (without `preset`/`kind`) into `config`.

    ViewConfig fields at top level apply to global and local views; `global`/`local` dicts apply
    to one of them; `normalise`, `n_local`, `asymmetric`, `slice_channels`, `slice_axis` set
    those. Raises ValueError naming the valid keys for anything unknown.
    """
    if not overrides:
        return config
    glob, loc, cfg = config.global_view, config.local_view, config
    shared = {k: v for k, v in overrides.items() if k not in _TOP_KEYS}
    for key in shared:
        if key not in _VIEW_FIELDS:
            raise _unknown(key, _VIEW_FIELDS | _TOP_KEYS, "views")
    glob = update_view(glob, shared)
    loc = update_view(loc, shared)
    if "global" in overrides:
        glob = update_view(glob, overrides["global"] or {}, "global view")
    if "local" in overrides:
        loc = update_view(loc, overrides["local"] or {}, "local view")
    # A field the recipe sets for the global views wins over the preset's asymmetric value for it.
    set_globally = set(shared) | set(overrides.get("global") or {})
    asym = tuple({k: v for k, v in a.items() if k not in set_globally} for a in config.asymmetric)
    cfg = replace(cfg, global_view=glob, local_view=loc, asymmetric=asym)
    if "normalise" in overrides:
        cfg = replace(cfg, normalise=update_normalise(cfg.normalise, overrides["normalise"]))
    if "n_local" in overrides:
        if int(overrides["n_local"]) < 0:
            raise ValueError(f"n_local must be >= 0, got {overrides['n_local']!r}")
        cfg = replace(cfg, n_local=int(overrides["n_local"]))
    if "asymmetric" in overrides:
        asym = overrides["asymmetric"]
        if asym is None or len(asym) != 2:
            raise ValueError("asymmetric takes two dicts of view overrides, one per global view")
        for a in asym:  # validate now, apply when building
            update_view(glob, a or {}, "asymmetric view")
        cfg = replace(cfg, asymmetric=(dict(asym[0] or {}), dict(asym[1] or {})))
    if "slice_channels" in overrides:
        if int(overrides["slice_channels"]) < 1:
            raise ValueError("slice_channels must be >= 1")
        cfg = replace(cfg, slice_channels=int(overrides["slice_channels"]))
    if "slice_axis" in overrides:
        cfg = replace(cfg, slice_axis=int(overrides["slice_axis"]))
    return cfg


def window_channel_names(names, windows) -> list[str]:
    """Encoder channel names for CT windows: "NAME[L<level>,W<width>]" per data channel and window,
    window minor (the order `ct_windows` stacks them in)."""
    return [f"{n}[L{float(lv):g},W{float(wd):g}]" for n in names for lv, wd in windows]
