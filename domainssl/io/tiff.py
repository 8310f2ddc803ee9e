"""TIFF / OME-TIFF reader for microscopy stacks (tifffile), channel-first `CYX` or `CZYX`.

tifffile knows the layouts (OME-XML, ImageJ hyperstacks, plain page stacks, pyramids) and gives
each series an axes string such as "ZCYX", "YXS" or "TCZYX". This module maps those axes onto the
data contract and reads regions through tifffile's zarr store, which decodes only the pages,
strips or tiles that a region touches.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..units import normalize_unit
from .errors import ImageReadError
from .axis_roles import read_by_roles
from .image import LazyImage, time_index

# TIFF ResolutionUnit -> (unit, factor to that unit per resolution unit)
_RESUNIT_TO_UM = {3: 1e4, 4: 1e3, 5: 1.0}  # centimetre, millimetre, micrometre (last two non-standard)


@contextmanager
def _tifffile_warnings():
    """Collect what tifffile logs in this thread while it parses a file.

    tifffile logs (instead of raising) when an IFD or ImageJ/OME metadata is corrupt and then
    falls back to a different, wrong series; the messages tell us the file is damaged.
    """
    records: list[str] = []
    thread = threading.get_ident()

    # A filter, not a handler: a record it keeps back reaches no handler, neither tifffile's
    # nor, by propagation, those of the user's own logging set-up (a handler would collect the
    # message while the user's root handler still printed it).
    class _Collect(logging.Filter):
        def filter(self, record):
            # the archive scan may parse other files in other threads: theirs pass on
            if record.thread == thread and record.levelno >= logging.WARNING:
                records.append(record.getMessage())
                return False
            return True

    logger = logging.getLogger("tifffile")
    collect = _Collect()
    logger.addFilter(collect)
    try:
        yield records
    finally:
        logger.removeFilter(collect)


def _fatal(messages: list[str]) -> list[str]:
    keys = ("invalid", "corrupt", "truncat", "failed", "out of range")
    return [m for m in messages if any(k in m.lower() for k in keys)]


def _check_data_extent(path: str, tif, series) -> None:
    """Raise when the series' pixel data ends beyond the end of the file (a cut-off file)."""
    size = tif.filehandle.size
    offset = getattr(series, "dataoffset", None)
    if offset is not None and offset + series.nbytes > size:
        raise ImageReadError(path, f"truncated: pixel data needs bytes up to {offset + series.nbytes} "
                             f"but the file has {size}; re-copy or re-export the file")
    # first and last page only: listing every IFD of a long stack would defeat lazy opening
    pages = series.pages
    first, last = pages[0], pages[len(pages) - 1]
    if first is None or last is None:
        raise ImageReadError(path, "pages of the series are missing (corrupt or truncated file)")
    for page in (first, last):
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts) if n]
        if ends and max(ends) > size:
            raise ImageReadError(path, f"truncated: page data ends at byte {max(ends)} but the file "
                                 f"has {size}; re-copy or re-export the file")


def _enum_name(value) -> str:
    """Name of a tifffile enum member; the number itself for codes tifffile does not know."""
    import tifffile

    if hasattr(value, "name"):
        return value.name
    try:
        return tifffile.COMPRESSION(value).name
    except ValueError:
        return str(value)


def _ome_pixels(tif, series_index: int) -> tuple[dict, list[dict]]:
    """The OME-XML `Pixels` attributes and `Channel` elements of one series' Image."""
    from tifffile import xml2dict

    ome = xml2dict(tif.ome_metadata).get("OME", {})
    images = ome.get("Image", [])
    images = images if isinstance(images, list) else [images]
    if series_index >= len(images):
        return {}, []
    pixels = images[series_index].get("Pixels", {})
    channels = pixels.get("Channel", [])
    channels = channels if isinstance(channels, list) else [channels]
    return pixels, channels


def _physical_sizes(tif, series, series_index: int) -> tuple[dict[str, float], dict[str, str], str]:
    """Pixel size per spatial axis letter ('Z', 'Y', 'X') at level 0, their units, and the source.

    OME-XML first, then ImageJ metadata (unit, z spacing) with the resolution tags for y/x, then
    resolution tags with a metric ResolutionUnit. Inch resolutions are print DPI (72, 300...) in
    nearly every file that carries them, not a physical pixel size, so they are not used.
    """
    sizes: dict[str, float] = {}
    units: dict[str, str] = {}
    if tif.is_ome:
        pixels, _ = _ome_pixels(tif, series_index)
        for ax in "XYZ":
            value = pixels.get(f"PhysicalSize{ax}")
            if value is not None:
                sizes[ax] = float(value)
                units[ax] = normalize_unit(pixels.get(f"PhysicalSize{ax}Unit", "µm")) or "µm"
        if sizes:
            return sizes, units, "ome"
    page = series.pages[0]
    tags = page.tags
    xres, yres = tags.get("XResolution"), tags.get("YResolution")
    resunit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2

    def _res(tag):
        num, den = tag.value
        return den / num if num else None

    ij = tif.imagej_metadata if tif.is_imagej else None
    if ij and normalize_unit(ij.get("unit")) not in (None, "px"):
        unit = normalize_unit(ij["unit"])
        for ax, tag in (("X", xres), ("Y", yres)):
            if tag is not None and _res(tag):
                sizes[ax], units[ax] = _res(tag), unit
        if "spacing" in ij:
            sizes["Z"], units["Z"] = float(ij["spacing"]), unit
        return sizes, units, "imagej"
    if resunit in _RESUNIT_TO_UM:
        for ax, tag in (("X", xres), ("Y", yres)):
            if tag is not None and _res(tag):
                sizes[ax], units[ax] = _res(tag) * _RESUNIT_TO_UM[resunit], "µm"
        return sizes, units, "resolution-tags"
    return sizes, units, "none"


class TiffImage(LazyImage):
    """One series (and pyramid level) of a TIFF/OME-TIFF as a lazy `(C, Y, X)` / `(C, Z, Y, X)` image.

    Source axes map as: C and S (samples) -> channels (C outer, S inner); Z -> Z; T -> fixed at
    the `t` option; I/Q (a page stack of unknown meaning) -> Z when the series has no Z; any other
    axis must have size 1.
    """

    format = "tiff"

    def __init__(self, path: str, series: int = 0, level: int = 0, t: int | None = None):
        import tifffile

        self._series_index = series
        self._level = level
        self._tif = None
        self._array = None
        self._pid = None
        try:
            with _tifffile_warnings() as warnings:
                tif = tifffile.TiffFile(path)
                try:
                    meta = self._inspect(path, tif, series, level, t)
                    bad = _fatal(warnings)
                    if bad:
                        raise ImageReadError(path, "corrupt or truncated TIFF: " + "; ".join(bad[:3]))
                finally:
                    tif.close()
        except ImageReadError:
            raise
        except Exception as exc:  # tifffile raises many types on bad input; name the file
            raise ImageReadError(path, f"not a readable TIFF ({type(exc).__name__}: {exc})") from exc
        shape, spacing, units, names, dtype, meta = meta
        axes = "CZYX" if len(shape) == 4 else "CYX"
        super().__init__(path, shape, axes, spacing, units, names, dtype, meta)

    def _inspect(self, path, tif, series_index, level, t):
        """Read the header facts; returns (shape, spacing, units, channel_names, dtype, meta)."""
        n_series = len(tif.series)
        if not 0 <= series_index < n_series:
            raise ImageReadError(path, f"series {series_index} requested but the file has {n_series} "
                                 f"series (0..{n_series - 1})")
        series = tif.series[series_index]
        n_levels = len(series.levels)
        if not 0 <= level < n_levels:
            raise ImageReadError(path, f"level {level} requested but series {series_index} has "
                                 f"{n_levels} pyramid level(s) (0..{n_levels - 1})")
        _check_data_extent(path, tif, series)
        lvl = series.levels[level]
        src_axes, src_shape = lvl.axes, tuple(lvl.shape)
        roles = self._axis_roles(path, src_axes, src_shape, t)
        self._src_axes, self._src_shape, self._roles = src_axes, src_shape, roles

        size = dict(zip(src_axes, src_shape))
        n_c = size.get(self._axis_for("c"), 1) if self._axis_for("c") else 1
        n_s = size.get("S", 1) if "S" in roles.values() and "S" in src_axes else 1
        self._n_c, self._n_s = n_c, n_s
        spatial = [roles_ax for roles_ax in ("z", "y", "x") if self._axis_for(roles_ax)]
        shape = (n_c * n_s,) + tuple(size[self._axis_for(r)] for r in spatial)

        sizes, units, source = _physical_sizes(tif, series, series_index)
        base = dict(zip(series.levels[0].axes, series.levels[0].shape))
        spacing, unit_list = [], []
        for r in spatial:
            ax = self._axis_for(r)
            letter = "Z" if r == "z" else ax  # an I/Q page stack read as z takes the Z size
            # a pyramid level covers the same field with fewer, larger pixels
            factor = base.get(ax, size[ax]) / size[ax]
            spacing.append(sizes.get(letter, 1.0) * factor)
            unit_list.append(units.get(letter, "px"))

        names = [f"ch{i}" for i in range(n_c * n_s)]
        if tif.is_ome:
            _, channels = _ome_pixels(tif, series_index)
            ome_names = [c.get("Name") for c in channels]
            if len(ome_names) == n_c * n_s and all(ome_names):
                names = [str(n) for n in ome_names]
            elif n_s > 1 and len(ome_names) == n_c and all(ome_names):
                # OME channels with SamplesPerPixel > 1 (RGB channels): one name per sample
                names = [f"{n}_{s}" for n in ome_names for s in range(n_s)]
        meta: dict[str, Any] = {
            "series": series_index,
            "n_series": n_series,
            "level": level,
            "levels": n_levels,
            "source_axes": src_axes,
            "source_shape": list(src_shape),
            "spacing_source": source,
            "photometric": getattr(lvl.keyframe.photometric, "name", str(lvl.keyframe.photometric)),
            "compression": _enum_name(lvl.keyframe.compression),
            "tiled": bool(lvl.keyframe.is_tiled),
            "kind": "ome" if tif.is_ome else "imagej" if tif.is_imagej else "tiff",
        }
        if t is not None:
            meta["t"] = t
        return shape, spacing, unit_list, names, np.dtype(lvl.dtype), meta

    def _axis_roles(self, path, axes: str, shape: tuple, t: int | None) -> dict[str, Any]:
        """Map each source axis letter to a role: 'c', 'S', 'z', 'y', 'x', or a fixed int index."""
        size = dict(zip(axes, shape))
        roles: dict[str, Any] = {}
        has_z = "Z" in axes and size["Z"] > 1
        for ax in axes:
            n = size[ax]
            if ax in "YX":
                roles[ax] = ax.lower()
            elif ax == "Z":
                roles[ax] = "z" if n > 1 else 0
            elif ax == "C":
                roles[ax] = "c"
            elif ax == "S":
                roles[ax] = "S"
            elif ax == "T":
                roles[ax] = time_index(path, t, n, f"series (axes {axes})")
            elif ax in "IQ" and n > 1 and not has_z and "z" not in roles.values():
                # a plain page stack: tifffile cannot tell z from time; treat it as a z stack
                # (meta["source_axes"] keeps the original letter)
                roles[ax] = "z"
            elif n == 1:
                roles[ax] = 0
            else:
                raise ImageReadError(path, f"axis {ax!r} of size {n} (axes {axes}) has no place in "
                                     "CYX/CZYX; convert the file or open one plane with tifffile")
        if t is not None and "T" not in axes:
            raise ImageReadError(path, f"t={t} given but the series has no T axis (axes {axes})")
        return roles

    def _axis_for(self, role: str) -> str | None:
        for ax, r in self._roles.items():
            if r == role:
                return ax
        return None

    # -- handles, one per process ------------------------------------------
    def _zarr(self):
        if self._array is None or self._pid != os.getpid():
            import tifffile
            import zarr

            try:
                self._tif = tifffile.TiffFile(self.path)
                store = self._tif.series[self._series_index].aszarr(level=self._level)
                self._array = zarr.open_array(store, mode="r")
            except Exception as exc:
                raise ImageReadError(self.path, f"cannot reopen ({type(exc).__name__}: {exc})") from exc
            self._pid = os.getpid()
        return self._array

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_tif=None, _array=None, _pid=None)
        return state

    def close(self) -> None:
        if self._tif is not None:
            self._tif.close()
        self._tif = self._array = None

    def _read(self, bounds) -> np.ndarray:
        (c0, c1), *spatial_bounds = bounds
        n_s = self._n_s
        # channel k = c * S + s: read the C rows that cover [c0, c1) with all samples
        if n_s > 1:
            cc0, cc1 = c0 // n_s, (c1 - 1) // n_s + 1
            s0, s1 = (c0, c1) if self._n_c == 1 else (0, n_s)
        else:
            cc0, cc1 = c0, c1
            s0, s1 = 0, 1
        spatial_roles = [r for r in ("z", "y", "x") if self._axis_for(r)]
        spans = {"c": slice(cc0, cc1), "S": slice(s0, s1),
                 **{r: slice(*b) for r, b in zip(spatial_roles, spatial_bounds)}}
        block, order = read_by_roles(self.path, self._zarr(), [self._roles[ax] for ax in self._src_axes],
                                     spans, "cSzyx", f"{bounds} (the file may be truncated or corrupt)")
        n_chan_axes = sum(r in ("c", "S") for r in order)
        if n_chan_axes == 0:
            block = block[None]
        elif n_chan_axes == 2:
            block = block.reshape((-1,) + block.shape[2:])
        if n_s > 1 and self._n_c > 1:
            offset = cc0 * n_s
            block = block[c0 - offset:c1 - offset]
        return block


def open_tiff(path, series=None, level: int = 0, t: int | None = None, **kw) -> TiffImage:
    """Open one series of a TIFF / OME-TIFF / ImageJ stack lazily as `CYX` or `CZYX`.

    Args:
        path: the .tif/.tiff/.ome.tif file.
        series: series index (int or digit string); default 0. `meta["n_series"]` tells how many.
        level: pyramid level of the series (0 = full resolution); spacing follows the level.
        t: time index for series with a T axis longer than 1 (required there).

    Returns:
        A `TiffImage`: channel names from OME-XML `Channel Name` (else "ch0".."chN"), spacing
        from OME PhysicalSize*, ImageJ metadata or metric resolution tags (units "µm", ...),
        else 1 "px" per pixel.

    Raises:
        ImageReadError: missing, truncated or corrupt file, bad series/level/t, or an axis
        that does not fit the data contract.
    """
    if kw:
        raise TypeError(f"open_tiff got unexpected options {sorted(kw)}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImageReadError(path, "no such file")
    if series is None:
        series = 0
    try:
        series = int(series)
    except (TypeError, ValueError):
        raise ImageReadError(path, f"series must be an index for TIFF files, got {series!r}") from None
    return TiffImage(path, series=series, level=int(level), t=t)
