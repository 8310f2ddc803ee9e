"""Patch samplers: where to cut 2D tiles / 3D patches from a lazy image.

A sampler only computes regions (tuples of slices over the image's `shape`, channel axis
included); the dataset reads them. Sizes are given in pixels or in physical units (then
converted per image with its spacing), so one recipe works across archives whose pixel
sizes differ. Everything is deterministic under a seed.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from ..io.image import LazyImage


def patch_pixels(image: LazyImage, size: Sequence[float], unit: str = "px") -> tuple[int, ...]:
    """Patch size in pixels per spatial axis of `image`, at most the image's extent (see
    `requested_pixels` for the size before that clip; `oversized_patch_message` reports it)."""
    return tuple(max(1, min(p, n)) for p, n in zip(requested_pixels(image, size, unit), image.spatial_shape))


def requested_pixels(image: LazyImage, size: Sequence[float], unit: str = "px") -> tuple[int, ...]:
    """Patch size in pixels per spatial axis of `image`, as asked (may exceed the image).

    Args:
        image: the lazy image (its `spacing`/`units` convert physical sizes).
        size: one value per spatial axis (`axes` order, e.g. (z, y, x)), or one value for all;
            a 2D size on a 3D image means (y, x) with a single z slice.
        unit: "px", or a physical unit that must match the image's units ("mm", "m", "µm").

    Returns:
        Pixels per spatial axis (at least 1).
    """
    nd = image.spatial_dims
    size = [float(s) for s in (size if isinstance(size, (list, tuple)) else [size])]
    if len(size) == 1:
        size = size * nd
    if len(size) == 2 and nd == 3:
        size = [1.0 if unit == "px" else image.spacing[0]] + size
    if len(size) != nd:
        raise ValueError(f"{image.path}: patch size {size} has {len(size)} values, image has "
                         f"{nd} spatial axes ({image.axes[1:]})")
    if unit == "px":
        px = [int(round(s)) for s in size]
    else:
        bad = [u for u in image.units if u != unit]
        if bad:
            raise ValueError(f"{image.path}: patch size is in {unit!r} but the image's spacing is in "
                             f"{image.units}; give the size in pixels (unit 'px') or in {image.units[0]!r}")
        px = [int(round(s / sp)) for s, sp in zip(size, image.spacing)]
    return tuple(max(1, p) for p in px)


def region_for(image: LazyImage, corner: Sequence[int], pixels: Sequence[int]) -> tuple[slice, ...]:
    """The region (all channels) of a patch whose low corner is `corner`."""
    return (slice(None),) + tuple(slice(int(c), int(c) + int(p)) for c, p in zip(corner, pixels))


def valid_fraction(image: LazyImage, region: tuple[slice, ...]) -> float:
    """Fraction of valid (non-nodata) pixels in `region`; 1.0 when the image has no mask."""
    mask = image.read_mask(region)
    return 1.0 if mask is None else float(mask.mean()) if mask.size else 0.0


class RandomPatchSampler:
    """Random patch regions inside an image, optionally skipping nodata or background patches.

    Args:
        size: patch size per spatial axis (see `patch_pixels`).
        unit: "px" or the physical unit of `size`.
        min_valid: reject patches whose valid-pixel fraction (nodata mask) is below this.
        background: optional `(threshold, min_fraction)`: reject patches where fewer than
            `min_fraction` of the pixels exceed `threshold` in the first channel (air in CT,
            empty slide in microscopy). Costs one read of the candidate, reused by the caller.
        max_tries: candidates tried before giving up on an image (then the last one is used
            and flagged, never an endless loop on an all-nodata file).
    """

    def __init__(self, size, unit: str = "px", min_valid: float = 0.0,
                 background: tuple[float, float] | None = None, max_tries: int = 20):
        self.size, self.unit = size, unit
        self.min_valid, self.background, self.max_tries = float(min_valid), background, int(max_tries)
        self._sized: tuple | None = None  # (image, pixels, corner highs) of the last image sized

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_sized"] = None  # never ship an image (or its handles) to a worker
        return state

    def _pixels_and_highs(self, image: LazyImage) -> tuple[tuple[int, ...], list[int]]:
        """Patch pixels and exclusive corner bounds for `image`, worked out once per image
        object (patches of one image come one after another on the per-patch path)."""
        sized = self._sized
        if sized is None or sized[0] is not image:
            pixels = patch_pixels(image, self.size, self.unit)
            sized = self._sized = (image, pixels, [n - p + 1 for n, p in zip(image.spatial_shape, pixels)])
        return sized[1], sized[2]

    def corners(self, image: LazyImage, rng: np.random.Generator,
                pixels: tuple[int, ...] | None = None) -> Iterator[tuple[int, ...]]:
        """Endless random low corners of patches of `pixels` (default: from the sampler's size)."""
        pixels = pixels or patch_pixels(image, self.size, self.unit)
        highs = [n - p + 1 for n, p in zip(image.spatial_shape, pixels)]
        while True:
            yield tuple(int(rng.integers(0, h)) for h in highs)

    def sample(self, image: LazyImage, rng: np.random.Generator) -> tuple[tuple[slice, ...], np.ndarray | None, bool]:
        """Pick one patch: returns (region, pixels already read or None, accepted flag)."""
        pixels, highs = self._pixels_and_highs(image)
        region, data = None, None
        for _ in range(self.max_tries):
            # the same draws as `corners`: one integer per axis, in axis order
            corner = [int(rng.integers(0, h)) for h in highs]
            region, data = (slice(None),) + tuple(slice(c, c + p) for c, p in zip(corner, pixels)), None
            if self.min_valid > 0 and valid_fraction(image, region) < self.min_valid:
                continue
            if self.background is not None:
                threshold, min_fraction = self.background
                data = image.read(region)
                if float((data[0] > threshold).mean()) < min_fraction:
                    continue
            return region, data, True
        return region, data, False


class GridPatchSampler:
    """Regular grid of patch regions covering an image (last row/column snapped to the edge).

    Args:
        size: patch size per spatial axis (see `patch_pixels`).
        stride: step per spatial axis in the same unit (default: the size, i.e. no overlap).
        unit: "px" or the physical unit of `size`/`stride`.
        min_valid: drop grid patches whose valid fraction is below this.
    """

    def __init__(self, size, stride=None, unit: str = "px", min_valid: float = 0.0):
        self.size, self.stride, self.unit, self.min_valid = size, stride, unit, float(min_valid)

    def regions(self, image: LazyImage) -> list[tuple[slice, ...]]:
        pixels = patch_pixels(image, self.size, self.unit)
        steps = pixels if self.stride is None else patch_pixels(image, self.stride, self.unit)
        starts = []
        for n, p, s in zip(image.spatial_shape, pixels, steps):
            axis = list(range(0, max(n - p, 0) + 1, max(s, 1)))
            if axis[-1] != n - p and n > p:
                axis.append(n - p)
            starts.append(axis)
        grid = np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, len(starts))
        regions = [region_for(image, corner, pixels) for corner in grid]
        if self.min_valid > 0:
            regions = [r for r in regions if valid_fraction(image, r) >= self.min_valid]
        return regions
