"""The lazy image every reader returns: headers on open, bytes on `read(region)`.

Data contract (see ../shared/DESIGN.md): arrays are channel-first, 2D `(C, Y, X)`
or 3D `(C, Z, Y, X)`; spacing and units are given per spatial axis in `axes` order.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .errors import ImageReadError

Region = tuple[slice, ...]


def time_index(path, t: int | None, n: int, noun: str = "image") -> int:
    """The time point to read from a time axis of `n` points; `t` is required when n > 1.

    Readers keep images 2D/3D: a time series is opened one time point at a time.
    """
    if t is not None:
        if not 0 <= t < n:
            raise ImageReadError(path, f"t={t} out of range: the {noun} has {n} time points")
        return int(t)
    if n > 1:
        raise ImageReadError(path, f"{noun} has {n} time points; pass t=<index> to open one time point")
    return 0


class LazyImage:
    """Base class of all readers.

    Subclasses set the header attributes in `__init__` (reading headers only) and
    implement `_read(bounds)`, which receives one `(start, stop)` pair per axis of
    `shape` (channel axis first, already clipped to the image) and returns exactly
    that block. Steps in a region are applied here, after the contiguous read.

    Attributes:
        path: the file or series folder, as a string.
        format: short format name ("dicom", "nifti", "geotiff", "ome-zarr", "tiff").
        shape: channel-first shape, `(C, Y, X)` or `(C, Z, Y, X)`.
        axes: "CYX" or "CZYX".
        spacing: physical size of one pixel per spatial axis, in `units`.
        units: one unit string per spatial axis ("mm", "m", "µm", "deg", "px").
        channel_names: `shape[0]` strings (bands, stains, sequences).
        dtype: numpy dtype that `read` returns (after any rescale the reader applies).
        meta: format geometry and value facts (affine, crs, transform, nodata,
            value_unit, ...); JSON-friendly values where possible.
        channels_apart: True where each channel is stored on its own (a file or chunk per
            band), so that reading a few chosen channels one run at a time costs less than
            reading every channel between them.
    """

    format: str = "unknown"
    channels_apart: bool = False

    def __init__(
        self,
        path,
        shape: Sequence[int],
        axes: str,
        spacing: Sequence[float],
        units: Sequence[str],
        channel_names: Sequence[str],
        dtype,
        meta: dict[str, Any] | None = None,
    ):
        self.path = str(path)
        self.shape = tuple(int(s) for s in shape)
        self.axes = axes
        self.spacing = tuple(float(s) for s in spacing)
        self.units = tuple(units)
        self.channel_names = [str(c) for c in channel_names]
        self.dtype = np.dtype(dtype)
        self.meta = dict(meta or {})
        if axes not in ("CYX", "CZYX") or len(self.shape) != len(axes):
            raise ImageReadError(self.path, f"internal: axes {axes!r} do not match shape {self.shape}")
        if len(self.spacing) != len(axes) - 1 or len(self.units) != len(axes) - 1:
            raise ImageReadError(self.path, f"internal: spacing {self.spacing} / units {self.units} "
                                 f"need one value per spatial axis of {axes}")
        if len(self.channel_names) != self.shape[0]:
            raise ImageReadError(self.path, f"{len(self.channel_names)} channel names for "
                                 f"{self.shape[0]} channels")

    # -- geometry helpers -------------------------------------------------
    @property
    def spatial_dims(self) -> int:
        """2 for `CYX`, 3 for `CZYX`."""
        return len(self.axes) - 1

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return self.shape[1:]

    def nbytes(self) -> int:
        """Size of the full array in memory, in bytes (what a naive full read costs)."""
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def describe(self) -> dict[str, Any]:
        """The header facts as a JSON-friendly dict (used by the archive scan)."""
        return {
            "path": self.path,
            "format": self.format,
            "shape": list(self.shape),
            "axes": self.axes,
            "spacing": list(self.spacing),
            "units": list(self.units),
            "channel_names": list(self.channel_names),
            "dtype": self.dtype.name,
        }

    # -- reading ----------------------------------------------------------
    def normalize_region(self, region: Region | None) -> tuple[list[tuple[int, int]], tuple[slice, ...]]:
        """Turn a user region into clipped `(start, stop)` bounds and the leftover steps.

        `region` is a tuple of slices, one per axis of `shape` (fewer are padded
        with full slices; integers are not allowed so that the result keeps all
        axes). Returns the bounds per axis and the slices to apply to the block.
        """
        fast = self._plain_bounds(region)
        if fast is not None:
            return fast, (slice(None),) * len(self.shape)
        if region is None:
            region = ()
        if not isinstance(region, tuple):
            region = tuple(region)
        if len(region) > len(self.shape):
            raise ValueError(f"{self.path}: region has {len(region)} slices, image has "
                             f"{len(self.shape)} axes {self.axes}")
        region = region + (slice(None),) * (len(self.shape) - len(region))
        bounds, steps = [], []
        for axis, (sl, size) in enumerate(zip(region, self.shape)):
            if not isinstance(sl, slice):
                raise TypeError(f"{self.path}: region must be slices (got {sl!r} for axis "
                                f"{self.axes[axis]}); use slice(i, i + 1) to keep the axis")
            start, stop, step = sl.indices(size)
            if step < 1:
                raise ValueError(f"{self.path}: negative steps are not supported in a region")
            stop = max(stop, start)
            bounds.append((start, stop))
            steps.append(slice(None, None, step) if step != 1 else slice(None))
        return bounds, tuple(steps)

    def _plain_bounds(self, region) -> list[tuple[int, int]] | None:
        """Bounds of a region of one `slice(start, stop)` of ints inside the image per axis (what
        samplers make), else None. The same result as the general path, without its per-axis
        `slice.indices` work: this runs several times per patch."""
        if type(region) is not tuple or len(region) != len(self.shape):
            return None
        bounds = []
        for sl, size in zip(region, self.shape):
            if type(sl) is not slice or sl.step is not None:
                return None
            start, stop = sl.start, sl.stop
            if start is None and stop is None:
                bounds.append((0, size))
            elif type(start) is int and type(stop) is int and 0 <= start <= stop <= size:
                bounds.append((start, stop))
            else:
                return None
        return bounds

    def read(self, region: Region | None = None) -> np.ndarray:
        """Read `region` (a tuple of slices over `shape`, channel axis first).

        Returns a numpy array of `self.dtype` equal to `full[region]`, reading only
        what the region needs.
        """
        bounds, steps = self.normalize_region(region)
        out_shape = tuple(b - a for a, b in bounds)
        if 0 in out_shape:
            block = np.zeros(out_shape, dtype=self.dtype)
        else:
            block = self._read(bounds)
            if block.shape != out_shape:
                raise ImageReadError(self.path, f"reader returned {block.shape} for region {bounds}")
        if any(s != slice(None) for s in steps):
            block = block[steps]
        return np.ascontiguousarray(block, dtype=self.dtype)

    def read_mask(self, region: Region | None = None) -> np.ndarray | None:
        """Valid-pixel mask over the spatial axes of `region` (True = valid), or None.

        Readers with nodata (GeoTIFF nodata/NaN) override `_read_mask`; the default is
        None, meaning every pixel is valid. The channel slice of `region` is honoured:
        a pixel is valid when it is valid in every selected channel.
        """
        bounds, steps = self.normalize_region(region)
        mask = self._read_mask(bounds)
        if mask is None:
            return None
        return np.ascontiguousarray(mask[steps[1:]])

    def _read(self, bounds: list[tuple[int, int]]) -> np.ndarray:
        raise NotImplementedError

    def _read_mask(self, bounds: list[tuple[int, int]]) -> np.ndarray | None:
        return None

    def close(self) -> None:
        """Release file handles (readers that hold them override this)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.path!r}, shape={self.shape}, axes={self.axes!r}, "
                f"spacing={self.spacing}, units={self.units}, dtype={self.dtype.name})")
