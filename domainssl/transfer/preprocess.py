"""Turn labeled images into encoder inputs the way the card says: channels, spacing, size, values.

`make_input_spec(card, labeled)` checks the labeled data against the card (channel names and
count, spatial dims, spacing, value scale) and fixes how every image is mapped to the encoder's
input; `prepare_inputs(labeled, spec)` applies it and returns one float32 tensor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from .card import check_spatial, check_value_range, resolve_channels
from .labeled import LabeledSet
from .progress import Progress

NORMALIZATION_SOURCES = ("card", "data")
RESIZE_MODES = ("resize", "crop")


@dataclass(frozen=True)
class InputSpec:
    """How one labeled image becomes one encoder input.

    channel_idx: data channels, in the encoder's order.
    zoom: resampling factor per spatial axis (data spacing / encoder spacing), or None.
    input_size: pixels per spatial axis the encoder gets.
    resize: "resize" (interpolate the whole image to input_size) or "crop" (centre crop / zero pad,
        keeping the physical scale; the default when the spacing is known on both sides).
    kind, offset, scale: values become (x - offset) / scale per channel (kind "none": unchanged).
    """

    channel_idx: tuple[int, ...]
    zoom: tuple[float, ...] | None
    input_size: tuple[int, ...]
    resize: str
    kind: str
    offset: tuple[float, ...]
    scale: tuple[float, ...]

    def describe(self) -> dict:
        return asdict(self)


def channel_means(labeled: LabeledSet, indices: Sequence[int], channel_idx: Sequence[int],
                  max_items: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std over (up to `max_items` of) the given images, selected channels."""
    indices = np.asarray(indices)
    if len(indices) > max_items:
        indices = np.random.default_rng(seed).choice(indices, max_items, replace=False)
    sums = np.zeros(len(channel_idx))
    sq = np.zeros(len(channel_idx))
    count = 0
    for i in indices:
        img = labeled.get_image(int(i))[list(channel_idx)].astype(np.float64)
        flat = img.reshape(len(channel_idx), -1)
        sums += flat.sum(1)
        sq += (flat ** 2).sum(1)
        count += flat.shape[1]
    mean = sums / max(count, 1)
    std = np.sqrt(np.maximum(sq / max(count, 1) - mean ** 2, 0.0))
    return mean, std


def make_input_spec(card: dict, labeled: LabeledSet, *, channel_map=None, normalization: str = "card",
                    resize: str | None = None, spacing_tolerance: float = 0.1,
                    check_values: bool = True) -> InputSpec:
    """Check `labeled` against `card` and fix the mapping to encoder inputs.

    Args:
        card: the encoder card (`encoder.json`).
        labeled: the labeled images (needs a split when `normalization="data"`).
        channel_map: data channel indices in the encoder's order, or {encoder_name: data_name};
            needed when channel names differ (see `card.resolve_channels`).
        normalization: "card" (the pretraining statistics; the data's scale is checked against
            them) or "data" (standardise with the labeled training images' own statistics).
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
    train = labeled.indices("train") if labeled.split is not None else np.arange(len(labeled))
    if normalization == "data":
        mean, std = channel_means(labeled, train, idx)
        kind, offset, scale = "standardize", mean, np.where(std > 0, std, 1.0)
    elif norm["kind"] == "standardize":
        if check_values:
            check_value_range(card, channel_means(labeled, train, idx, max_items=64)[0])
        kind, offset, scale = "standardize", np.asarray(norm["mean"], float), np.asarray(norm["std"], float)
    elif norm["kind"] == "percentile":
        lo, hi = np.asarray(norm["p01"], float), np.asarray(norm["p99"], float)
        kind, offset, scale = "percentile", lo, np.where(hi > lo, hi - lo, 1.0)
    else:
        kind, offset, scale = "none", np.zeros(len(idx)), np.ones(len(idx))
    scale = np.where(np.asarray(scale) > 0, scale, 1.0)
    return InputSpec(tuple(int(i) for i in idx), tuple(zoom) if zoom else None,
                     tuple(int(s) for s in card["input_size"]), mode, kind,
                     tuple(float(v) for v in offset), tuple(float(v) for v in scale))


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


def to_input(image: np.ndarray, spec: InputSpec):
    """One image `(C, *S)` in data units -> float32 tensor `(C_enc, *input_size)` for the encoder."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(image[list(spec.channel_idx)], dtype=np.float32))
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    x = (x - torch.tensor(spec.offset).view(shape).float()) / torch.tensor(spec.scale).view(shape).float()
    x = torch.nan_to_num(x)
    if spec.zoom:
        new = [max(1, round(s * z)) for s, z in zip(x.shape[1:], spec.zoom)]
        x = F.interpolate(x[None], size=new, mode="bilinear" if x.ndim == 3 else "trilinear",
                          align_corners=False)[0]
    return _fit(x, spec.input_size, spec.resize).contiguous()


def prepare_inputs(labeled: LabeledSet, spec: InputSpec, indices: Sequence[int] | None = None,
                   progress: bool = True):
    """Encoder inputs for `indices` (default all): float32 tensor `(N, C_enc, *input_size)`."""
    import torch

    indices = range(len(labeled)) if indices is None else indices
    bar = Progress(f"preparing {labeled.name} inputs", len(indices), enabled=progress)
    out = torch.empty((len(indices), len(spec.channel_idx), *spec.input_size), dtype=torch.float32)
    for j, i in enumerate(indices):
        out[j] = to_input(labeled.get_image(int(i)), spec)
        bar.update()
    bar.close()
    return out
