"""Turn labeled images into encoder inputs the way the card says: channels, spacing, size, values.

`make_input_spec(card, labeled)` checks the labeled data against the card (channel names and
count, spatial dims, spacing, value scale) and fixes how every image is mapped to the encoder's
input; `prepare_inputs(labeled, spec)` applies it and returns one float32 tensor. Values are
normalised by the same `domainssl.transforms.Normaliser` the pretraining views used, with the
card's configuration and archive statistics, and invalid pixels (NaN, inf, a reader's nodata)
are filled as the views fill them, so transfer sees what pretraining saw.
`prepare_input(encoder, array)` does all of it for one's own arrays (one image or a batch).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .card import CardMismatchError, check_spatial, check_value_range, has_physical_scale, resolve_channels
from .labeled import (REGION_COLUMNS, LabeledDataError, LabeledSet, _check_regions, _csv_paths,  # noqa: F401
                      _read_rows, region_problem)  # region_problem: re-exported, it lived here
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
        image = _image(labeled, int(i))[list(channel_idx)]
        valid = np.isfinite(image).all(0)  # as the views: a pixel invalid in one channel is invalid
        acc.update(image, None if valid.all() else valid)
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
    physical = has_physical_scale(labeled.units) and has_physical_scale(card.get("units"))
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


def to_input(image: np.ndarray, spec: InputSpec, normaliser=None, mask: np.ndarray | None = None):
    """One image `(C, *S)` in data units -> float32 tensor `(in_chans, *input_size)`.

    Order as in the pretraining views (`domainssl.transforms.ViewGenerator`, the same code):
    fit the normalisation on the valid pixels, fill invalid pixels (NaN or inf in any channel,
    or False in `mask`, `(*S)` bool, True = valid) with the value that normalises to 0, resample,
    then apply the normalisation (an affine map commutes with interpolation).
    """
    import torch
    import torch.nn.functional as F

    from ..transforms.views import _valid_mask

    normaliser = normaliser or spec.normaliser()
    x = torch.from_numpy(np.ascontiguousarray(image[list(spec.channel_idx)], dtype=np.float32))
    if mask is not None and tuple(np.shape(mask)) != tuple(x.shape[1:]):
        raise ValueError(f"mask of shape {tuple(np.shape(mask))} for an image of shape {tuple(image.shape)}; "
                         "give one bool per pixel (*S), True = valid")
    valid = _valid_mask(x, mask)
    filled, a, b = normaliser.fit_and_fill(x[None], None if valid is None else valid[None])
    x = filled[0]  # invalid pixels take the value that normalises to 0, as in pretraining
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


def check_regions(csv_path) -> int:
    """Check that every region of a labels CSV (`z0,z1,y0,y1,x0,x1` columns) lies inside its image.

    Opens the header of each image whose row has a region (cheap; no pixels are read). Returns
    the number of regions checked. `load_csv` (so `load_labeled`) runs the same check on the
    images it opens; this one is for a CSV that is not loaded.

    Raises:
        LabeledDataError: naming the CSV line, the file, the region and the image's shape.
    """
    from pathlib import Path

    from ..io import ImageReadError, open_image

    csv_path = Path(csv_path)
    fields, rows, lines = _read_rows(csv_path)  # as load_csv reads it (byte-order mark and all)
    if not any(c in fields for c in REGION_COLUMNS) or "path" not in fields:
        return 0
    opened: dict = {}  # rows cropping one volume open it once

    def image_of(path: str, where: str):
        if path not in opened:
            try:
                opened[path] = open_image(path)
            except ImageReadError as exc:
                raise LabeledDataError(f"{where}: {exc}") from exc
        return opened[path]

    return _check_regions(csv_path, rows, lines, _csv_paths(csv_path, rows), image_of)


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


def _card_of(card_or_encoder) -> dict:
    """The card of an encoder card dict, a loaded encoder (`.card`) or an encoder directory."""
    import os

    from .card import read_card

    if isinstance(card_or_encoder, dict):
        return card_or_encoder
    card = getattr(card_or_encoder, "card", None)
    if isinstance(card, dict):
        return card
    if isinstance(card_or_encoder, (str, os.PathLike)):
        return read_card(card_or_encoder)
    raise TypeError(f"card_or_encoder must be an encoder card (dict), an encoder from load_encoder "
                    f"(with .card) or an encoder directory, got {type(card_or_encoder).__name__}")


def prepare_input(card_or_encoder, array, *, spacing: Sequence[float] | None = None,
                  units: Sequence[str] | None = None, channel_names: Sequence[str] | None = None,
                  channel_map=None, mask=None, resize: str | None = None, check_values: bool = True):
    """Apply an encoder card's preprocessing to one's own arrays, as `domainssl probe` does.

    Channels are put in the card's order, resampled to the card's spacing when both sides have
    physical spacing, normalised with the card's normalisation and archive statistics (the
    pretraining views' code) and fitted to the card's input size; invalid pixels (NaN, inf, or
    False in `mask`) get the value that normalises to 0, as in pretraining.

        enc = domainssl.load_encoder("ENC")
        x = prepare_input(enc, image)              # (C, Y, X) in data units -> (in_chans, *input_size)
        features = enc(x[None])                    # (1, embed_dim)

    Args:
        card_or_encoder: the encoder from `load_encoder`, its card (dict) or the encoder directory.
        array: one image `(C, *S)` or a batch `(N, C, *S)` in the data's units (the units of the
            card's statistics, e.g. HU, reflectance), numpy or torch; `(*S)` for one channel.
            S has the card's spatial dims (2: Y, X; 3: Z, Y, X).
        spacing: pixel size per spatial axis (z, y, x order), in `units` (default: the card's
            units). With the card's physical spacing the image is resampled to it and centre
            cropped / zero padded to the input size ("crop"); without, it is interpolated to the
            input size ("resize").
        units: per spatial axis, e.g. ["mm", "mm"].
        channel_names: the array's channel names, matched to the card's by name (any order);
            default: the card's names, i.e. the channels are taken to be in the card's order.
        channel_map: data channel indices in the encoder's order, or {encoder_name: data_name},
            when the names differ (see `card.resolve_channels`).
        mask: `(*S)` or `(N, *S)` bool, True = valid pixel (e.g. a reader's `read_mask`).
        resize: "resize" or "crop", to override the default above.
        check_values: refuse data whose channel means sit far outside the pretraining statistics
            (another unit scale); the message says how to rescale.

    Returns:
        float32 torch tensor `(in_chans, *input_size)` for one image, `(N, in_chans, *input_size)`
        for a batch (in_chans counts the card's CT windows).

    Raises:
        CardMismatchError: channels, spatial dims or value scale do not fit the card.
        ValueError: an array or mask of another shape.
    """
    import torch

    card = _card_of(card_or_encoder)
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    dims = int(card["spatial_dims"])
    z = "Z, " if dims == 3 else ""
    shapes = f"(C, {z}Y, X), (N, C, {z}Y, X) or ({z}Y, X)"
    if array.ndim not in (dims, dims + 1, dims + 2):
        raise ValueError(f"array of shape {array.shape} for a {dims}D encoder; give {shapes}")
    single = array.ndim < dims + 2
    batch = array[None] if single else array
    if batch.ndim == dims + 1:  # (1, *S): one channel
        batch = batch[:, None]
    n = batch.shape[0]
    if mask is not None:
        given = np.shape(mask)
        mask = np.asarray(mask, dtype=bool)
        mask = mask[None] if mask.ndim == dims else mask
        if mask.shape != (n, *batch.shape[2:]):
            raise ValueError(f"mask of shape {given} for an array of shape {array.shape}; give "
                             f"one bool per pixel, {tuple(batch.shape[2:])} (or with N first), True = valid")
    if channel_names is None:
        names = [str(c) for c in card["channel_names"]]
        channel_names = names if len(names) == batch.shape[1] else [f"c{i}" for i in range(batch.shape[1])]
    elif len(channel_names) != batch.shape[1]:
        raise ValueError(f"{len(channel_names)} channel names {list(channel_names)} for an array with "
                         f"{batch.shape[1]} channel(s), shape {array.shape}")
    if spacing is None and units is not None:
        raise ValueError(f"units {list(units)} without spacing; give the pixel size per spatial axis "
                         "(spacing=...) with them, or neither")
    if spacing is not None:
        spacing = [float(s) for s in np.ravel(spacing)]
        if len(spacing) != dims:
            raise ValueError(f"spacing {spacing} has {len(spacing)} values; give one per spatial axis ({dims})")
        units = list(units) if units is not None else list(card.get("units") or ["px"] * dims)
    labeled = LabeledSet(name="array", num_items=n, get_image=lambda i: batch[i].astype(np.float32),
                         labels=np.zeros(n, int), class_names=["unlabeled"],
                         channel_names=[str(c) for c in channel_names], spatial_dims=dims,
                         spacing=spacing, units=None if units is None else [str(u) for u in units])
    spec = make_input_spec(card, labeled, channel_map=channel_map, resize=resize, check_values=check_values)
    normaliser = spec.normaliser()
    out = torch.stack([to_input(_image(labeled, i), spec, normaliser, None if mask is None else mask[i])
                       for i in range(n)])
    return out[0] if single else out
