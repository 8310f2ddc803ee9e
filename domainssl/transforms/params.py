"""Random parameters of n views, drawn at once with numpy.

One sampler serves both paths: the CPU generator draws n=1 (or the n local crops of one
sample), the GPU batch module draws n=B and ships the small arrays to the device. So the two
paths agree in distribution by construction; only the pixel arithmetic differs (and that is
shared too where it can be, see `intensity.py`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .config import ViewConfig


@dataclass
class ViewParams:
    """Per-view random parameters for n views. Shapes: n views, d spatial dims, C channels.

    start, extent: (n, d) int crop box in input pixels (start index, side length).
    slice_start: (n,) int first slice of a 2.5D slab (2D views from 3D input), else None.
    flip: (n, d) bool; rot_k: (n,) int quarter turns in the last two spatial axes.
    rotation: (n, d, d) small rotation matrices (identity where off); deformed: (n,) bool, True
    where a rotation or elastic field is on (those views take the grid_sample path).
    elastic: (n, d, g, ..., g) displacement at control points in normalised output units or None.
    gain, shift, gamma: (n, C) contrast factor, additive brightness, gamma; jitter: (n,) bool.
    bias_coeff: (n, T) polynomial bias-field coefficients (0 where off).
    drop: (n, C) bool channels set to 0. noise_std, blur_sigma: (n,) (0 where off).
    solarize: (n,) threshold above which x -> 1 - x (inf where off).
    colour: (n, 3, 3) RGB colour matrices (identity where off) or None.
    """

    start: np.ndarray
    extent: np.ndarray
    slice_start: np.ndarray | None
    flip: np.ndarray
    rot_k: np.ndarray
    rotation: np.ndarray
    deformed: np.ndarray
    elastic: np.ndarray | None
    gain: np.ndarray
    shift: np.ndarray
    gamma: np.ndarray
    jitter: np.ndarray
    bias_coeff: np.ndarray | None
    drop: np.ndarray
    noise_std: np.ndarray
    blur_sigma: np.ndarray
    solarize: np.ndarray
    colour: np.ndarray | None

    def row(self, i: int) -> "ViewParams":
        """Parameters of view i alone (n=1), for the per-sample CPU path."""
        s = slice(i, i + 1)
        return ViewParams(**{k: (None if v is None else v[s]) for k, v in self.__dict__.items()})


def bias_exponents(spatial_dims: int, degree: int = 3) -> list[tuple[int, ...]]:
    """Exponent tuples of the non-constant monomials of total degree <= `degree`."""
    exps = [e for e in itertools.product(range(degree + 1), repeat=spatial_dims) if 0 < sum(e) <= degree]
    return sorted(exps, key=lambda e: (sum(e), e))


def _rotation_matrices(rng: np.random.Generator, n: int, d: int, max_deg: float) -> np.ndarray:
    rad = np.deg2rad(max_deg)
    if d == 2:
        a = rng.uniform(-rad, rad, n)
        c, s = np.cos(a), np.sin(a)
        return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    mats = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    for p, q in ((0, 1), (0, 2), (1, 2)):  # small rotations about each axis, composed
        a = rng.uniform(-rad, rad, n)
        r = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
        r[:, p, p] = r[:, q, q] = np.cos(a)
        r[:, p, q], r[:, q, p] = -np.sin(a), np.sin(a)
        mats = mats @ r
    return mats


def _crop_sides(rng, n, cfg: ViewConfig, in_shape, spacing, out_size) -> np.ndarray:
    """Crop side length in input pixels, (n, d) float, before clipping to the input."""
    d = len(in_shape)
    lo, hi = np.log(cfg.ratio[0]), np.log(cfg.ratio[1])
    if d == 2:  # torchvision semantics: one aspect ratio w/h, log-uniform
        lr = rng.uniform(lo, hi, n)
        aspect = np.stack([np.exp(-lr / 2), np.exp(lr / 2)], -1)
    else:  # one log-uniform factor per axis, normalised to product 1 (keeps the volume)
        lr = rng.uniform(lo, hi, (n, d))
        aspect = np.exp(lr - lr.mean(-1, keepdims=True))
    if cfg.extent is not None:
        side_phys = rng.uniform(cfg.extent[0], cfg.extent[1], (n, 1))
        return side_phys * aspect / spacing
    if cfg.target_spacing is not None:
        ts = np.asarray(cfg.target_spacing, float)
        if ts.size == 1:
            ts = np.repeat(ts, d)
        if ts.size != d:
            raise ValueError(f"target_spacing {cfg.target_spacing} has {ts.size} axes, views have {d}")
        zoom = rng.uniform(cfg.zoom[0], cfg.zoom[1], (n, 1))
        return np.asarray(out_size, float) * ts * aspect / (spacing * zoom)
    frac = rng.uniform(cfg.scale[0], cfg.scale[1], (n, 1))
    volume = float(np.prod(in_shape))
    return (frac * volume) ** (1.0 / d) * aspect


def sample_view_params(
    rng: np.random.Generator,
    n: int,
    cfg: ViewConfig,
    in_shape: tuple[int, ...],
    spacing: np.ndarray,
    n_channels: int,
    n_slice_starts: int | None = None,
) -> ViewParams:
    """Draw parameters of n views of config `cfg`.

    in_shape: spatial shape of the input the crop is taken from (the 2D plane for slab views).
    spacing: (n, d) or (d,) physical spacing of that input, in its units.
    n_channels: channels the intensity ops see (after normalisation and slab stacking).
    n_slice_starts: when 2D views are cut from 3D samples, the number of valid first slices of
      a slab (depth - slice_channels + 1), else None.
    """
    d = len(in_shape)
    out_size = cfg.sizes(d)
    shape = np.asarray(in_shape, np.int64)
    spacing = np.broadcast_to(np.asarray(spacing, float), (n, d))

    sides = np.clip(np.rint(_crop_sides(rng, n, cfg, in_shape, spacing, out_size)), 1, shape).astype(np.int64)
    start = np.floor(rng.random((n, d)) * (shape - sides + 1)).astype(np.int64)
    slice_start = None if n_slice_starts is None else rng.integers(0, max(n_slice_starts, 1), n)

    axes = range(d) if cfg.flip_axes is None else cfg.flip_axes
    flip = np.zeros((n, d), bool)
    for a in axes:
        if not 0 <= a < d:
            raise ValueError(f"flip_axes {cfg.flip_axes} names axis {a}, views have {d} spatial axes")
        flip[:, a] = rng.random(n) < cfg.flip_p
    rot_k = np.where(rng.random(n) < cfg.rot90_p, rng.integers(1, 4, n), 0)
    if out_size[-1] != out_size[-2]:
        rot_k = rot_k - rot_k % 2  # quarter turns would swap unequal sides: keep 0/180 only

    affine_on = (rng.random(n) < cfg.affine_p) & (cfg.rotate_deg > 0)
    rotation = _rotation_matrices(rng, n, d, cfg.rotate_deg)
    rotation[~affine_on] = np.eye(d)
    elastic = None
    elastic_on = np.zeros(n, bool)
    if cfg.elastic_p > 0 and cfg.elastic_magnitude > 0:
        elastic_on = rng.random(n) < cfg.elastic_p
        g = max(int(cfg.elastic_grid), 2)
        scale = 2.0 * cfg.elastic_magnitude / np.asarray(out_size, float)  # pixels -> [-1, 1] units
        elastic = rng.standard_normal((n, d) + (g,) * d) * scale.reshape((1, d) + (1,) * d)
        elastic[~elastic_on] = 0.0

    c_draw = n_channels if cfg.per_channel else 1
    jitter = rng.random(n) < cfg.jitter_p
    gain = rng.uniform(1 - cfg.contrast, 1 + cfg.contrast, (n, c_draw))
    shift = rng.uniform(-cfg.brightness, cfg.brightness, (n, c_draw))
    gamma = np.exp(rng.uniform(np.log(cfg.gamma[0]), np.log(cfg.gamma[1]), (n, c_draw)))
    gain, shift, gamma = (np.broadcast_to(a, (n, n_channels)).copy() for a in (gain, shift, gamma))
    gain[~jitter], shift[~jitter], gamma[~jitter] = 1.0, 0.0, 1.0

    bias_coeff = None
    if cfg.bias_field_p > 0 and cfg.bias_field_coeff > 0:
        t = len(bias_exponents(d))
        bias_coeff = rng.uniform(-cfg.bias_field_coeff, cfg.bias_field_coeff, (n, t))
        bias_coeff[~(rng.random(n) < cfg.bias_field_p)] = 0.0

    drop = np.zeros((n, n_channels), bool)
    if cfg.channel_dropout_p > 0 and n_channels > 1:
        on = rng.random(n) < cfg.channel_dropout_p
        drop = (rng.random((n, n_channels)) < cfg.channel_dropout_rate) & on[:, None]
        everything = drop.all(1)
        keep = rng.integers(0, n_channels, n)
        drop[everything, keep[everything]] = False  # never drop every channel

    noise_std = np.where(rng.random(n) < cfg.noise_p, rng.uniform(*cfg.noise_std, n), 0.0)
    blur_sigma = np.where(rng.random(n) < cfg.blur_p, rng.uniform(*cfg.blur_sigma, n), 0.0)
    solarize = np.where(rng.random(n) < cfg.solarize_p, cfg.solarize_threshold, np.inf)

    colour = None
    if cfg.uses_rgb:
        from .color import colour_matrices  # numpy only

        hue = np.where(jitter, rng.uniform(-cfg.hue, cfg.hue, n), 0.0)
        sat = np.where(jitter, rng.uniform(1 - cfg.saturation, 1 + cfg.saturation, n), 1.0)
        gray = rng.random(n) < cfg.grayscale_p
        colour = colour_matrices(hue, sat, gray)

    return ViewParams(
        start=start, extent=sides, slice_start=slice_start, flip=flip, rot_k=rot_k,
        rotation=rotation, deformed=affine_on | elastic_on, elastic=elastic,
        gain=gain, shift=shift, gamma=gamma, jitter=jitter, bias_coeff=bias_coeff, drop=drop,
        noise_std=noise_std, blur_sigma=blur_sigma, solarize=solarize, colour=colour,
    )

