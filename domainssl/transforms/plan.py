"""What a view generator produces, shared by the CPU generator and the GPU batch module.

`ViewPlan` resolves a preset + overrides into the list of view configs (globals first, then
locals), the normaliser, and the output channel names; it refuses RGB-only operations on
channels that are not RGB before any data is seen.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .color import require_rgb
from .config import ViewConfig, ViewsConfig, apply_overrides, update_view
from .normalise import Normaliser
from .presets import preset_config
from .spatial import slab_channel_names

KINDS = ("two_view", "multi_crop", "single")


class ViewPlan:
    """Resolved view layout for one generator.

    groups: list of (ViewConfig, count); views are emitted group by group in this order.
    normaliser: the per-channel `Normaliser`. spatial_dims: dims of the views (2 or 3).
    """

    def __init__(self, config: ViewsConfig, kind: str, spatial_dims: int, channel_names: Sequence[str],
                 stats: Mapping[str, Any] | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown view kind {kind!r}; choose one of {', '.join(KINDS)}")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
        if not channel_names:
            raise ValueError("channel_names are required (one per channel of the samples)")
        self.config, self.kind, self.spatial_dims = config, kind, spatial_dims
        self.channel_names = [str(c) for c in channel_names]
        self.normaliser = Normaliser(config.normalise, self.channel_names, stats)
        if not 0 <= config.slice_axis < 3:
            raise ValueError(f"slice_axis must be 0, 1 or 2 (a spatial axis of 3D samples), got {config.slice_axis}")
        g = config.global_view
        if kind == "single":
            self.groups: list[tuple[ViewConfig, int]] = [(g, 1)]
        else:
            g1 = update_view(g, config.asymmetric[0], "asymmetric view")
            g2 = update_view(g, config.asymmetric[1], "asymmetric view")
            self.groups = [(g1, 1), (g2, 1)]
            if kind == "multi_crop" and config.n_local > 0:
                self.groups.append((config.local_view, config.n_local))
        for cfg, _ in self.groups:
            cfg.sizes(spatial_dims)  # validates the size against the dims now, not mid-epoch
            if cfg.uses_rgb:
                op = "hue" if cfg.hue > 0 else "saturation" if cfg.saturation > 0 else "grayscale"
                require_rgb(self.normaliser.channel_names_out, op)

    @property
    def n_views(self) -> int:
        """Views per sample (2, 2 + n_local or 1)."""
        return sum(n for _, n in self.groups)

    def slab_depth(self, input_spatial_dims: int) -> int | None:
        """Slices stacked as channels when 2D views come from 3D inputs, else None."""
        if input_spatial_dims == self.spatial_dims:
            return None
        if input_spatial_dims == 3 and self.spatial_dims == 2:
            return self.config.slice_channels
        raise ValueError(f"{self.spatial_dims}D views cannot be cut from {input_spatial_dims}D samples; "
                         f"give 3D samples (C, Z, Y, X) for 3D views or set spatial_dims=2")

    def output_channel_names(self, input_spatial_dims: int | None = None) -> list[str]:
        """Channel names of the views for inputs with `input_spatial_dims` (default: the views')."""
        n = self.slab_depth(input_spatial_dims or self.spatial_dims)
        names = self.channel_names if n is None else slab_channel_names(
            self.channel_names, n, self.config.slice_axis)
        if self.config.normalise.mode != "window":
            return list(names)
        wins = self.config.normalise.windows
        return [f"{c}[L{lv:g},W{wd:g}]" for c in names for lv, wd in wins]


def resolve_config(preset: str, spatial_dims: int, stats=None, overrides: Mapping[str, Any] | None = None) -> ViewsConfig:
    """Preset `preset` for `spatial_dims`-D views with recipe overrides applied."""
    over = dict(overrides or {})
    for key in ("preset", "kind"):
        over.pop(key, None)
    return apply_overrides(preset_config(preset, spatial_dims, stats), over)


class SeededViews:
    """What the CPU and GPU view generators share: the plan, the seed and the epoch.

    Subclasses call `_start(plan, seed)` in `__init__`.
    """

    def _start(self, plan: "ViewPlan", seed: int) -> None:
        self.plan = plan
        self.seed = int(seed)
        self.epoch = 0
        self._counter = 0

    @property
    def n_views(self) -> int:
        """Views per sample."""
        return self.plan.n_views

    def set_epoch(self, epoch: int) -> None:
        """Start epoch `epoch`: views change from epoch to epoch, reproducibly."""
        self.epoch = int(epoch)
        self._counter = 0

    def output_channel_names(self, input_spatial_dims: int | None = None) -> list[str]:
        """Channel names of the views (see `ViewPlan.output_channel_names`)."""
        return self.plan.output_channel_names(input_spatial_dims)
