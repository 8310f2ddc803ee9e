"""Normalisation from physical units (HU, reflectance, counts) to network units.

Every mode is a per-channel affine map `a * x + b` (optionally clipped, optionally one map per CT
window), fitted once per sample (`Normaliser.fit`) and applied per view after resampling
(`Normaliser.apply`). An affine map commutes with linear interpolation, flips and rotations, so
applying it to the smaller views instead of the larger patch gives the same numbers for less
work; for CT windows (clipped) resampling HU first and windowing after is also the right order.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .config import NormaliseConfig, window_channel_names

# Percentiles are estimated on a strided subsample: exact enough for normalisation (the error in
# a 1st percentile from 32k of 4M voxels is far below the jitter that follows) and it keeps the
# cost per sample independent of the patch size.
_PERCENTILE_SAMPLES = 32768


def ct_window(hu, level: float, width: float):
    """Map HU to [0, 1] through one window: level - width/2 -> 0, level + width/2 -> 1, clipped.

    Works on numpy arrays and torch tensors of any shape; e.g. level 40, width 400 maps
    -160 HU -> 0, 40 HU -> 0.5, 240 HU -> 1.
    """
    if width <= 0:
        raise ValueError(f"CT window width must be > 0 HU, got {width}")
    y = (hu - (level - width / 2.0)) / width
    return y.clip(0.0, 1.0)


def ct_windows(hu, windows: Sequence[tuple[float, float]]):
    """Several windows of a (C, *S) HU image as channels: (C * len(windows), *S), window minor."""
    parts = [ct_window(hu, lv, wd) for lv, wd in windows]
    if isinstance(hu, np.ndarray):
        return np.stack(parts, 1).reshape((-1,) + hu.shape[1:]).astype(np.float32, copy=False)
    import torch

    return torch.stack(parts, 1).reshape((-1,) + tuple(hu.shape[1:]))


def _stats_vectors(stats: Mapping[str, Any], channel_names: Sequence[str], keys: Sequence[str]) -> list[np.ndarray]:
    """Per-channel vectors of `stats[key]`, reordered to `channel_names` by name."""
    missing_keys = [k for k in keys if k not in stats]
    if missing_keys:
        raise ValueError(f"normalisation statistics lack {missing_keys}; run the stats step "
                         f"(domainssl.data.stats) or pick another normalise mode")
    names = [str(c) for c in stats.get("channel_names", channel_names)]
    index = {n: i for i, n in enumerate(names)}
    missing = [c for c in channel_names if c not in index]
    if missing:
        raise ValueError(f"normalisation statistics have no entry for channel(s) {missing}; "
                         f"they cover {names}. Recompute the stats for this archive or map the "
                         f"channel names")
    order = [index[c] for c in channel_names]
    out = []
    for k in keys:
        v = np.asarray(stats[k], float)
        if v.shape != (len(names),):
            raise ValueError(f"stats[{k!r}] has shape {v.shape}, expected one value per channel "
                             f"({len(names)})")
        out.append(v[order])
    return out


class Normaliser:
    """Per-channel affine normalisation of one `NormaliseConfig`.

    channel_names: input channel names (stats are matched by name, not position).
    stats: {"channel_names", "mean", "std", "p01", "p99"} for zscore / stats_range.
    After construction, `channel_names_out` are the output names (windows add channels) and
    `windows_per_channel` is W (1 except in window mode).
    """

    def __init__(self, cfg: NormaliseConfig, channel_names: Sequence[str], stats: Mapping[str, Any] | None = None):
        self.cfg = cfg
        names = [str(c) for c in channel_names]
        c = len(names)
        self.clip = cfg.clip
        self._fixed: tuple[np.ndarray, np.ndarray] | None = None  # (C, W) a and b, if per archive
        if cfg.mode == "none":
            self._fixed = (np.ones((c, 1)), np.zeros((c, 1)))
        elif cfg.mode == "rule":
            self._fixed = (np.full((c, 1), cfg.scale), np.full((c, 1), cfg.offset))
        elif cfg.mode == "zscore":
            if stats is None:
                raise ValueError("normalise mode 'zscore' needs archive statistics (stats=...)")
            mean, std = _stats_vectors(stats, names, ("mean", "std"))
            self._fixed = (1.0 / np.maximum(std, 1e-12)[:, None], (-mean / np.maximum(std, 1e-12))[:, None])
        elif cfg.mode == "stats_range":
            if stats is None:
                raise ValueError("normalise mode 'stats_range' needs archive statistics (stats=...)")
            lo, hi = _stats_vectors(stats, names, ("p01", "p99"))
            span = np.maximum(hi - lo, 1e-12)
            self._fixed = ((1.0 / span)[:, None], (-lo / span)[:, None])
        elif cfg.mode == "window":
            lv = np.array([w[0] for w in cfg.windows], float)
            wd = np.array([w[1] for w in cfg.windows], float)
            self._fixed = (np.tile(1.0 / wd, (c, 1)), np.tile(-(lv - wd / 2) / wd, (c, 1)))
            self.clip = cfg.clip if cfg.clip is not None else (0.0, 1.0)
        elif cfg.mode != "percentile":
            raise ValueError(f"unknown normalise mode {cfg.mode!r}")
        self.windows_per_channel = len(cfg.windows) if cfg.mode == "window" else 1
        if cfg.mode == "window":
            self.channel_names_out = window_channel_names(names, cfg.windows)
        else:
            self.channel_names_out = names
        self.n_in = c

    @property
    def per_sample(self) -> bool:
        """True when the map depends on the sample (percentile mode)."""
        return self._fixed is None

    def fit(self, x, valid=None):
        """Per-sample maps for batch `x` (B, C, *S) torch; valid: (B, *S) bool or None.

        Returns (a, b), float32 tensors (B, C, W) on x's device.
        """
        import torch

        bsz, c = x.shape[0], x.shape[1]
        if c != self.n_in:
            raise ValueError(f"normaliser was built for {self.n_in} channel(s), the image has {c}")
        if self._fixed is not None:
            a = torch.as_tensor(self._fixed[0], dtype=torch.float32, device=x.device)
            b = torch.as_tensor(self._fixed[1], dtype=torch.float32, device=x.device)
            return a.expand(bsz, -1, -1), b.expand(bsz, -1, -1)
        lo, hi = self._percentiles(x, valid)
        span = hi - lo
        ok = span > 1e-12 * torch.maximum(hi.abs(), lo.abs()).clamp_min(1.0)
        a = torch.where(ok, 1.0 / torch.where(ok, span, torch.ones_like(span)), torch.zeros_like(span))
        b = torch.where(ok, -lo * a, torch.zeros_like(span))
        return a[..., None].float(), b[..., None].float()

    def _percentiles(self, x, valid):
        import torch

        flat = x.reshape(x.shape[0], x.shape[1], -1)
        stride = max(1, -(-flat.shape[-1] // _PERCENTILE_SAMPLES))
        sub = flat[..., ::stride].float()
        vsub = None if valid is None else valid.reshape(valid.shape[0], -1)[:, ::stride]
        q = [self.cfg.low / 100.0, self.cfg.high / 100.0]
        if sub.device.type == "cpu":
            # numpy's partition-based percentile is several times faster than torch's sort-based
            # quantile on CPU; both give the same linear-interpolated quantile.
            arr = sub.numpy()
            vs = None if vsub is None else vsub.numpy()
            out = np.zeros((2,) + arr.shape[:2], np.float64)
            for i in range(arr.shape[0]):
                for ch in range(arr.shape[1]):
                    vals = arr[i, ch]
                    keep = np.isfinite(vals) if vs is None else (vs[i] & np.isfinite(vals))
                    vals = vals if keep.all() else vals[keep]
                    if vals.size:
                        out[:, i, ch] = np.percentile(vals, [self.cfg.low, self.cfg.high])
            return torch.from_numpy(out[0]), torch.from_numpy(out[1])
        bad = ~torch.isfinite(sub)
        if vsub is not None:
            bad |= ~vsub[:, None, :]
        sub = sub.masked_fill(bad, float("nan"))
        qs = torch.nanquantile(sub, torch.tensor(q, device=sub.device, dtype=sub.dtype), dim=-1)
        qs = torch.nan_to_num(qs, nan=0.0)
        return qs[0].double(), qs[1].double()

    def fill_values(self, a, b):
        """Physical value per channel (B, C) that maps to 0 (the lowest, for several windows)."""
        import torch

        safe = torch.where(a != 0, a, torch.ones_like(a))
        zero_point = torch.where(a != 0, -b / safe, torch.zeros_like(a))
        return zero_point.amin(-1)

    def fit_and_fill(self, x, valid=None):
        """Fit on the valid pixels of a batch x (B, C, *S) (`valid` (B, *S) bool, None = all) and
        give invalid pixels the value that normalises to 0, per sample and channel, so nodata
        looks the same in every view and in transfer. Returns (filled x, a, b) as `fit`."""
        import torch

        a, b = self.fit(x, valid)
        if valid is not None:
            fill = self.fill_values(a, b).to(x.dtype)
            x = torch.where(valid[:, None], x, fill.reshape(fill.shape + (1,) * (x.ndim - 2)))
        return x, a, b

    def apply(self, x, a, b):
        """Normalise views x (B, C, *S) with maps (B, C, W) -> (B, C*W, *S), clipped if set.

        Works in place when W == 1 (x must be a tensor the caller owns).
        """
        extra = (1,) * (x.ndim - 2)
        if a.shape[-1] == 1:
            out = x.mul_(a[..., 0].reshape(a.shape[:2] + extra)).add_(b[..., 0].reshape(b.shape[:2] + extra))
        else:
            w = a.shape[-1]
            out = x[:, :, None] * a.reshape(a.shape + extra) + b.reshape(b.shape + extra)
            out = out.reshape((x.shape[0], x.shape[1] * w) + tuple(x.shape[2:]))
        if self.clip is not None:
            out = out.clamp_(self.clip[0], self.clip[1])
        return out
