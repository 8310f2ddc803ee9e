"""Turn labeled images into encoder inputs the way the card says: channels, spacing, size, values.

`make_input_spec(card, labeled)` checks the labeled data against the card (channel names and
count, spatial dims, spacing, value scale) and fixes how every image is mapped to the encoder's
input; `prepare_inputs(labeled, spec)` applies it and returns one float32 tensor. Values are
normalised by the same `domainssl.transforms.Normaliser` the pretraining views used, with the
card's configuration and archive statistics, so transfer sees what pretraining saw.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .card import CardMismatchError, check_spatial, check_value_range, resolve_channels
from .labeled import REGION_COLUMNS, LabeledDataError, LabeledSet
from .progress import Progress

NORMALIZATION_SOURCES = ("card", "data")
RESIZE_MODES = ("resize", "crop")
_NORMALISE_FIELDS = ("mode", "scale", "offset", "low", "high", "windows", "clip")


@dataclass(frozen=True)
class InputSpec:
    """How one labeled image becomes one encoder input.

    channel_idx: data channels, in the encoder's (card's) channel order.
    channel_names: the card's channel names (what the normaliser's statistics are keyed by).
    zoom: resampling factor per spatial axis (data spacing / encoder spacing), or None.
    input_size: pixels per spatial axis the encoder gets.
    resize: "resize" (interpolate the whole image to input_size) or "crop" (centre crop / zero pad,
        keeping the physical scale; the default when the spacing is known on both sides).
    normalise: `NormaliseConfig` fields; stats: the statistics it uses (archive or labeled data).
    """

    channel_idx: tuple[int, ...]
    channel_names: tuple[str, ...]
    zoom: tuple[float, ...] | None
    input_size: tuple[int, ...]
    resize: str
    normalise: dict[str, Any]
    stats: dict[str, Any] | None = field(default=None)

    def describe(self) -> dict:
        return {"channel_idx": list(self.channel_idx), "channel_names": list(self.channel_names),
                "zoom": list(self.zoom) if self.zoom else None, "input_size": list(self.input_size),
                "resize": self.resize, "normalise": self.normalise, "stats": self.stats}

    def normaliser(self):
        """The `domainssl.transforms.Normaliser` for this spec."""
        from ..transforms import Normaliser, NormaliseConfig

        cfg = dict(self.normalise)
        if cfg.get("windows") is not None:
            cfg["windows"] = tuple(tuple(float(v) for v in w) for w in cfg["windows"])
        if cfg.get("clip") is not None:
            cfg["clip"] = tuple(float(v) for v in cfg["clip"])
        return Normaliser(NormaliseConfig(**cfg), list(self.channel_names), self.stats)


def labeled_stats(labeled: LabeledSet, indices: Sequence[int], channel_idx: Sequence[int],
                  channel_names: Sequence[str], max_items: int = 256, seed: int = 0) -> dict[str, Any]:
    """Per-channel statistics (mean, std, p01, p99, ...) of the selected channels over up to
    `max_items` of the given images, in the format of `domainssl.data.stats`."""
    from ..data.stats import ChannelStats

    indices = np.asarray(indices)
    if len(indices) > max_items:
        indices = np.random.default_rng(seed).choice(indices, max_items, replace=False)
    acc = ChannelStats(channel_names, reservoir=50_000, seed=seed)
    for i in indices:
        acc.update(_image(labeled, int(i))[list(channel_idx)])
    return acc.result()


def make_input_spec(card: dict, labeled: LabeledSet, *, channel_map=None, normalization: str = "card",
                    resize: str | None = None, spacing_tolerance: float = 0.1,
                    check_values: bool = True) -> InputSpec:
    """Check `labeled` against `card` and fix the mapping to encoder inputs.

    Args:
        card: the encoder card (`encoder.json`).
        labeled: the labeled images.
        channel_map: data channel indices in the encoder's order, or {encoder_name: data_name};
            needed when channel names differ (see `card.resolve_channels`).
        normalization: "card" (the pretraining normalisation and archive statistics; the data's
            scale is checked against them) or "data" (the same mode with statistics of the
            labeled training images, for zscore / stats_range cards).
        resize: "resize" or "crop"; default crop when both sides have physical spacing, else resize.
        spacing_tolerance: relative spacing difference accepted without resampling.

    Raises:
        CardMismatchError: channels, spatial dims or value scale do not fit (the message says how
            to map channels or rescale).
    """
    if normalization not in NORMALIZATION_SOURCES:
        raise ValueError(f"normalization must be one of {NORMALIZATION_SOURCES}, got {normalization!r}")
    idx = resolve_channels(card, labeled.channel_names, channel_map)
    zoom = check_spatial(card, labeled.spatial_dims, labeled.spacing, labeled.units, spacing_tolerance)
    physical = bool(labeled.units) and all(u not in ("px", "") for u in labeled.units) and \
        all(u not in ("px", "") for u in card.get("units") or ["px"])
    mode = resize or ("crop" if physical else "resize")
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {mode!r}")
    norm = card["normalization"]
    normalise = {k: norm[k] for k in _NORMALISE_FIELDS if k in norm}
    names = [str(n) for n in card["channel_names"]]
    train = labeled.indices("train") if labeled.split is not None else np.arange(len(labeled))
    stats = norm.get("stats")
    if normalization == "data":
        if norm["mode"] not in ("zscore", "stats_range"):
            raise CardMismatchError(f"normalization 'data' replaces archive statistics, but the card's "
                                    f"mode {norm['mode']!r} uses none; rescale the data to the "
                                    "pretraining units instead")
        stats = labeled_stats(labeled, train, idx, names)
    elif check_values:
        means = labeled_stats(labeled, train, idx, names, max_items=64)["mean"]
        check_value_range(card, means)
    return InputSpec(tuple(int(i) for i in idx), tuple(names), tuple(zoom) if zoom else None,
                     tuple(int(s) for s in card["input_size"]), mode, normalise, stats)


def _fit(x, size: Sequence[int], mode: str):
    """(C, *S) tensor -> (C, *size) by interpolation ("resize") or centre crop / zero pad ("crop")."""
    import torch
    import torch.nn.functional as F

    if tuple(x.shape[1:]) == tuple(size):
        return x
    if mode == "resize":
        if x.ndim == 3:  # antialias so that shrinking does not alias fine texture
            return F.interpolate(x[None], size=tuple(size), mode="bilinear", align_corners=False,
                                 antialias=True)[0]
        return F.interpolate(x[None], size=tuple(size), mode="trilinear", align_corners=False)[0]
    out = torch.zeros((x.shape[0], *size), dtype=x.dtype)
    src, dst = [slice(None)], [slice(None)]
    for have, want in zip(x.shape[1:], size):
        if have >= want:
            a = (have - want) // 2
            src.append(slice(a, a + want))
            dst.append(slice(None))
        else:
            a = (want - have) // 2
            src.append(slice(None))
            dst.append(slice(a, a + have))
    out[tuple(dst)] = x[tuple(src)]
    return out


def to_input(image: np.ndarray, spec: InputSpec, normaliser=None):
    """One image `(C, *S)` in data units -> float32 tensor `(in_chans, *input_size)`.

    Order as in the pretraining views: fit the normalisation on the image, resample, then apply
    it (an affine map commutes with interpolation); non-finite values become 0.
    """
    import torch
    import torch.nn.functional as F

    normaliser = normaliser or spec.normaliser()
    x = torch.from_numpy(np.ascontiguousarray(image[list(spec.channel_idx)], dtype=np.float32))
    finite = torch.isfinite(x)
    valid = finite.all(0) if not bool(finite.all()) else None
    a, b = normaliser.fit(x[None], None if valid is None else valid[None])
    x = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    if spec.zoom:
        new = [max(1, round(s * z)) for s, z in zip(x.shape[1:], spec.zoom)]
        x = F.interpolate(x[None], size=new, mode="bilinear" if x.ndim == 3 else "trilinear",
                          align_corners=False)[0]
    if spec.resize == "crop":
        kept = np.prod([min(h, w) for h, w in zip(x.shape[1:], spec.input_size)])
        if kept < 0.5 * np.prod(spec.input_size):
            warnings.warn(f"some labeled images fill less than half of the encoder's input "
                          f"{tuple(spec.input_size)} at the card's spacing: the rest is zero padding "
                          f"and the features describe mostly padding; give larger regions (the "
                          f"encoder's field of view) or --resize resize", UserWarning, stacklevel=2)
    if spec.resize == "crop":
        # normalise first, then pad: the padding is 0 in the encoder's input units (a window's
        # low end, e.g. air for CT windows; the mean under zscore), not raw 0 (0 HU is water)
        x = normaliser.apply(x[None], a, b)[0]
        return _fit(x, spec.input_size, spec.resize).contiguous()
    x = _fit(x, spec.input_size, spec.resize).contiguous()
    return normaliser.apply(x[None], a, b)[0].contiguous()


def _region_bounds(row: dict, names: Sequence[str]) -> list[tuple[int | None, int | None]]:
    """(start, stop) per spatial axis from a CSV row's region cells; None where a cell is empty."""
    bounds = []
    for a in range(0, len(names), 2):
        cells = [(row.get(n) or "").strip() for n in names[a:a + 2]]
        try:
            bounds.append(tuple(int(c) if c else None for c in cells))
        except ValueError:
            raise LabeledDataError(f"region columns {names[a]},{names[a + 1]} must be integers, "
                                   f"found {cells[0]!r},{cells[1]!r}") from None
    return bounds


def region_problem(bounds, spatial_shape: Sequence[int], names: Sequence[str]) -> str | None:
    """Why a region does not lie inside an image of `spatial_shape`, or None when it does.

    A region must satisfy 0 <= start < stop <= size on every axis: reads clip silently, so a
    region partly outside the image would be cut and then stretched to the encoder's input size.
    """
    for (lo, hi), size, axis in zip(bounds, spatial_shape, names[::2]):
        axis = axis[0]
        start, stop = (0 if lo is None else lo), (size if hi is None else hi)
        if not 0 <= start < stop <= size:
            return (f"{axis}0={start}, {axis}1={stop} is not inside the image's {axis} axis of {size} pixels "
                    f"(need 0 <= {axis}0 < {axis}1 <= {size})")
    return None


def check_regions(csv_path) -> int:
    """Check that every region of a labels CSV (`z0,z1,y0,y1,x0,x1` columns) lies inside its image.

    Opens the header of each image whose row has a region (cheap; no pixels are read). Returns
    the number of regions checked.

    Raises:
        LabeledDataError: naming the CSV line, the file, the region and the image's shape.
    """
    from pathlib import Path

    from ..io import ImageReadError, open_image
    from .labeled import _read_rows

    csv_path = Path(csv_path)
    checked = 0
    fields, rows, lines = _read_rows(csv_path)  # as load_csv reads it (byte-order mark and all)
    opened: dict = {}  # rows cropping one volume open it once
    if not any(c in fields for c in REGION_COLUMNS) or "path" not in fields:
        return 0
    for row, line in zip(rows, lines):
        if not any(row.get(c) for c in REGION_COLUMNS):
            continue
        where = f"{csv_path}, line {line}"
        path = Path(row["path"])
        path = path if path.is_absolute() else csv_path.parent / path
        try:
            if str(path) not in opened:
                opened[str(path)] = open_image(str(path))
            image = opened[str(path)]
        except ImageReadError as exc:
            raise LabeledDataError(f"{where}: {exc}") from exc
        spatial = tuple(image.shape[1:])
        names = REGION_COLUMNS[-2 * len(spatial):]
        try:
            problem = region_problem(_region_bounds(row, names), spatial, names)
        except LabeledDataError as exc:
            raise LabeledDataError(f"{where}: {exc}") from None
        if problem:
            region = ",".join(f"{n}={row.get(n) or ''}" for n in names)
            raise LabeledDataError(
                f"{where}: region {region} of {path}: {problem}; the image is {image.shape} "
                f"({image.axes}). Fix the region columns (pixel indices, stop exclusive; "
                "leave both cells of an axis empty for the whole axis)")
        checked += 1
    return checked


def _image(labeled: LabeledSet, i: int) -> np.ndarray:
    """Item `i` of `labeled`, refused with a clear error when a spatial axis is empty (a region
    outside the image reads as 0 pixels, which no resize can stretch)."""
    image = labeled.get_image(i)
    if min(image.shape[1:], default=0) < 1:
        raise LabeledDataError(f"{labeled.name}: item {i} ({labeled.class_names[labeled.labels[i]]!r}) is "
                               f"empty, shape {tuple(image.shape)}: its region lies outside the image or "
                               "has stop <= start; fix the region columns of that row")
    return image


def prepare_inputs(labeled: LabeledSet, spec: InputSpec, indices: Sequence[int] | None = None,
                   progress: bool = True):
    """Encoder inputs for `indices` (default all): float32 tensor `(N, in_chans, *input_size)`."""
    import torch

    indices = range(len(labeled)) if indices is None else indices
    normaliser = spec.normaliser()
    first = to_input(_image(labeled, int(indices[0])), spec, normaliser) if len(indices) else None
    out = torch.empty((len(indices), *(first.shape if first is not None else (0,))), dtype=torch.float32)
    bar = Progress(f"preparing {labeled.name} inputs", len(indices), enabled=progress)
    for j, i in enumerate(indices):
        out[j] = first if j == 0 else to_input(_image(labeled, int(i)), spec, normaliser)
        bar.update()
    bar.close()
    return out
