"""GeoTIFF / COG reader (rasterio): windowed reads, band names, nodata, scale/offset, overviews.

One file with N bands, or a list of files (one band each, as Sentinel-2 ships them) stacked as
bands in list order. Datasets are opened lazily once per process and reused, so a patch read
costs one rasterio window read per file; uncompressed tiled files larger than GDAL's block cache
skip GDAL at full resolution and read their tile bytes directly (`tiff_tiles.TileIndex`: one
pread per touched tile).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import ImageReadError
from .image import LazyImage
from .tiff_tiles import TileIndex

# GDAL's block cache defaults to 5% of RAM per process; with one process per DataLoader worker
# that adds up. 64 MiB keeps a few hundred compressed 256² tiles warm, which is all a random
# patch sampler can reuse.
GDAL_CACHEMAX_BYTES = 64 * 2**20

_RESAMPLING = ("nearest", "bilinear", "cubic", "average", "mode")

_LINEAR_UNITS = {"metre": "m", "meter": "m", "m": "m", "foot": "ft", "us survey foot": "us-ft",
                 "kilometre": "km"}


_cache_limited_pid: int | None = None


def limit_gdal_cache(nbytes: int = GDAL_CACHEMAX_BYTES) -> None:
    """Cap GDAL's block cache for this process, once, unless the user set GDAL_CACHEMAX.

    A process-wide setting rather than a `rasterio.Env` around every read: entering an Env per
    patch costs ~10% of a 256² window read, and outside an Env GDAL falls back to its large
    default (5% of RAM per process). Set the GDAL_CACHEMAX environment variable to override.
    """
    global _cache_limited_pid
    if _cache_limited_pid == os.getpid():
        return
    _cache_limited_pid = os.getpid()
    if "GDAL_CACHEMAX" in os.environ:
        return
    from rasterio.env import set_gdal_config

    set_gdal_config("GDAL_CACHEMAX", int(nbytes))


def _env(**options):
    """The GDAL environment files are opened in: default options (sidecar files such as .ovr
    overviews and .aux.xml band metadata stay visible) plus `options` (GDAL config options)."""
    import rasterio

    limit_gdal_cache()
    return rasterio.Env(**options)


def read_options(tiled: bool, compress: str | None, nbytes: int) -> dict[str, str]:
    """GDAL config options a file is opened with for patch reads, from its layout (`tiled`,
    `compress` as rasterio's profile names it, None when uncompressed) and `nbytes`, its pixel
    bytes at the level read.

    Uncompressed tiled files larger than the block cache (`GDAL_CACHEMAX_BYTES`) get
    GTIFF_DIRECT_IO=YES: GDAL then copies a window's bytes straight from the file into the
    output instead of through its block cache. A random patch of a file the cache cannot hold
    seldom hits it, so filling and evicting it only costs: ~100 us of a ~430 us 256² x 4-band
    uint16 window read of a 2 GiB file. A file that fits stays cached and reads faster through
    the cache (a 50 MB file: ~3x), so it keeps the defaults, as do compressed files, which are
    decoded tile by tile. GDAL reads the option when the dataset is opened, so it is set around
    the open only (an Env per read would cost more than it saves). At full resolution the
    files that get the option are read by the direct tile reader (`GeoTiffImage._tile_index`)
    instead; it still serves their overview levels and GDAL mask reads.
    """
    if tiled and compress is None and nbytes > GDAL_CACHEMAX_BYTES:
        return {"GTIFF_DIRECT_IO": "YES"}
    return {}


def _crs_string(crs) -> str | None:
    """'EPSG:xxxx' when the CRS is an EPSG code, else its WKT; None without a CRS."""
    if crs is None:
        return None
    return crs.to_string()


def _spacing_units(crs, transform) -> tuple[tuple[float, float], tuple[str, str]]:
    """Pixel size (y, x) in the CRS's units, from the affine transform (rotation allowed)."""
    a, b, _, d, e, _ = tuple(transform)[:6]
    size_x = math.hypot(a, d)
    size_y = math.hypot(b, e)
    if crs is None:
        unit = "px"
    elif crs.is_geographic:
        unit = "deg"
    else:
        name, _factor = crs.units_factor
        unit = _LINEAR_UNITS.get(str(name).lower(), str(name))
    return (size_y, size_x), (unit, unit)


class _FileInfo:
    """Header facts of one file, gathered once at open (plain data, picklable)."""

    def __init__(self, path: str, ds):
        self.path = path
        self.count = ds.count
        self.height, self.width = ds.height, ds.width
        self.dtype = np.dtype(ds.dtypes[0])
        self.crs = ds.crs
        self.transform = ds.transform
        self.descriptions = list(ds.descriptions)
        self.colour = [c.name for c in ds.colorinterp]  # "red", "green", "blue", "alpha", "gray", ...
        self.nodatavals = list(ds.nodatavals)
        self.scales = list(ds.scales)
        self.offsets = list(ds.offsets)
        self.band_units = list(ds.units)
        self.overviews: list[int] = []  # set by _read_info from the full-resolution dataset
        self.mask_flags = [[f.name for f in flags] for flags in ds.mask_flag_enums]
        self.block_shape = ds.block_shapes[0] if ds.count else None
        self.tiled = bool(ds.profile.get("tiled", False))
        self.compress = ds.profile.get("compress")
        self.nbytes = self.count * self.height * self.width * self.dtype.itemsize


def _open_dataset(path: str, level: int):
    import rasterio

    kwargs = {"overview_level": level - 1} if level > 0 else {}
    return rasterio.open(path, **kwargs)


def _check_complete(ds, path: str) -> None:
    """Raise when the last block of the first and last band lies beyond the end of a local file.

    A header-only check (GDAL's TIFF block offsets): a copy cut off mid-transfer opens fine and
    only fails, or worse reads zeros, when a patch reaches the missing tiles.
    """
    if not os.path.isfile(path) or not ds.count:
        return
    size = os.path.getsize(path)
    bh, bw = ds.block_shapes[0]
    xb, yb = (ds.width - 1) // bw, (ds.height - 1) // bh
    for band in sorted({1, ds.count}):
        offset = ds.get_tag_item(f"BLOCK_OFFSET_{xb}_{yb}", "TIFF", bidx=band)
        nbytes = ds.get_tag_item(f"BLOCK_SIZE_{xb}_{yb}", "TIFF", bidx=band)
        if offset and nbytes and int(offset) + int(nbytes) > size:
            raise ImageReadError(path, f"truncated: the last block of band {band} ends at byte "
                                 f"{int(offset) + int(nbytes)} but the file has {size} bytes; "
                                 "re-copy or re-download the file")


def _read_info(path: str, level: int) -> _FileInfo:
    from rasterio.errors import RasterioError

    if not os.path.exists(path) and "://" not in path:
        raise ImageReadError(path, "no such file")
    try:
        with _env(), _open_dataset(path, 0) as ds:
            factors = ds.overviews(1) if ds.count else []
            if level > len(factors):
                raise ImageReadError(path, f"level {level} requested but the file has {len(factors)} "
                                     f"overview level(s) (factors {factors}); use level "
                                     f"0..{len(factors)}")
            if level == 0:
                _check_complete(ds, path)
                info = _FileInfo(path, ds)
        if level > 0:
            with _env(), _open_dataset(path, level) as ds:
                _check_complete(ds, path)
                info = _FileInfo(path, ds)
        info.overviews = list(factors)  # the full-resolution file's factors, whatever the level
        return info
    except ImageReadError:
        raise
    except (RasterioError, OSError) as exc:
        raise ImageReadError(path, f"not a readable GeoTIFF ({exc})") from exc


def _same_grid(a: _FileInfo, b: _FileInfo) -> bool:
    return ((a.height, a.width) == (b.height, b.width) and a.crs == b.crs
            and a.transform.almost_equals(b.transform, precision=1e-6 * max(abs(a.transform.a), 1e-12)))


def _scalable(ref: _FileInfo, f: _FileInfo) -> bool:
    """True when `f` maps onto `ref`'s grid by scaling and shifting alone: one CRS, both grids
    north-up without rotation, no GDAL mask/alpha band (their masks would need warping) and no
    NaN nodata."""
    a, b, _, d, e, _ = tuple(f.transform)[:6]
    ra, rb, _, rd, re_, _ = tuple(ref.transform)[:6]
    masks = any(flag in ("per_dataset", "alpha") for flags in f.mask_flags for flag in flags)
    # a NaN nodata spreads through GDAL's resampled read into valid neighbours: warp those files
    nan_nodata = any(v is not None and math.isnan(v) for v in f.nodatavals)
    return (f.crs == ref.crs and b == d == rb == rd == 0 and a * ra > 0 and e * re_ > 0
            and not masks and not nan_nodata)


def _pixel_area(f: _FileInfo) -> float:
    a, b, _, d, e, _ = tuple(f.transform)[:6]
    return abs(a * e - b * d)


def _finest_shared(infos: list[_FileInfo]) -> _FileInfo:
    """The file with the finest pixels that at least one other file shares (else the finest):
    Sentinel-2's 10 m bands, not Landsat's lone 15 m panchromatic band, which would make every
    30 m band four times its size."""
    areas = [float(f"{_pixel_area(i):.6g}") for i in infos]  # 6 digits: metres or degrees alike
    shared = [i for i, area in zip(infos, areas) if areas.count(area) > 1]
    return min(shared or infos, key=_pixel_area)


def _grid_text(f: _FileInfo) -> str:
    (sy, sx), (u, _) = _spacing_units(f.crs, f.transform)
    return f"{Path(f.path).name}: {f.height}×{f.width} px at {sx:g}×{sy:g} {u}, {_crs_string(f.crs)}"


class GeoTiffImage(LazyImage):
    """A GeoTIFF/COG (or a stack of single-band GeoTIFFs) as a lazy `(C, Y, X)` image.

    `read(region)` issues one rasterio window read per file touched by the channel slice.
    `read_mask(region)` marks nodata, NaN in float bands (declared nodata or not) and GDAL
    mask/alpha bands as invalid.
    With scale/offset, nodata pixels keep their scaled stored value in `read`: use the mask.
    A stack's grid is its first file's (`grid="first"`) or the finest grid two files share
    (`"finest"`, as a band folder opens: `band_folder.open_band_folder`); `channel_names` replaces the names read
    from the files and `name` the image's path (default the first file). `band_values` gives, per
    band, a dict with `scale`, `offset`, `unit` used where the file declares none (e.g. from a
    STAC item), and `source` is recorded as meta["source"].
    """

    format = "geotiff"

    def __init__(self, paths: Sequence[str], level: int = 0, resample: str | None = None,
                 grid: str = "first", channel_names: Sequence[str] | None = None, name: str | None = None,
                 band_values: Sequence[dict | None] | None = None, source: dict | None = None):
        paths = [str(p) for p in paths]
        if not paths:
            raise ImageReadError("<empty list>", "no GeoTIFF files given")
        if resample is not None and resample not in _RESAMPLING:
            raise ImageReadError(paths[0], f"resample={resample!r} is not one of {_RESAMPLING}")
        if grid not in ("first", "finest"):
            raise ImageReadError(paths[0], f"grid={grid!r}: expected 'first' or 'finest'")
        infos = [_read_info(p, level) for p in paths]
        ref = infos[0] if grid == "first" else _finest_shared(infos)
        for info in infos:
            if not _same_grid(ref, info) and resample is None:
                raise ImageReadError(info.path, "files to stack are on different grids ("
                                     f"{_grid_text(ref)}; {_grid_text(info)}); pass "
                                     "resample='nearest' or 'bilinear' to resample every file onto "
                                     "the first file's grid, or open the files separately")
        dtypes = {i.dtype for i in infos}
        self._paths = paths
        self._level = level
        self._resample = resample
        self._resampled = [resample is not None and not _same_grid(ref, i) for i in infos]
        # files off the grid: a scaled window read where the grids are axis-aligned in one CRS
        # (Sentinel-2's 20/60 m bands: ~0.32 ms per 96² window with its nodata footprint read,
        # ~0.43 ms through a WarpedVRT), else warped (another CRS, rotation, GDAL mask bands)
        self._scaled = [warped and _scalable(ref, info) for warped, info in zip(self._resampled, infos)]
        # per file, decided once: the direct tile reader, or None for the rasterio path
        self._tiles = [self._tile_index(i, level, warped) for i, warped in zip(infos, self._resampled)]
        # band index -> (file index, 1-based band index in that file)
        self._band_map = [(fi, b + 1) for fi, info in enumerate(infos) for b in range(info.count)]
        self._nodata = [infos[fi].nodatavals[b - 1] for fi, b in self._band_map]
        self._nodata_rules: dict = {}
        scales = [infos[fi].scales[b - 1] for fi, b in self._band_map]
        offsets = [infos[fi].offsets[b - 1] for fi, b in self._band_map]
        band_units = [infos[fi].band_units[b - 1] for fi, b in self._band_map]
        # what the files do not say, a catalogue may (a STAC item's raster:bands, see band_folder)
        for i, extra in enumerate(band_values or []):
            if extra and scales[i] in (None, 1.0) and offsets[i] in (None, 0.0):
                scales[i], offsets[i] = extra.get("scale", scales[i]), extra.get("offset", offsets[i])
            if extra and not band_units[i] and extra.get("unit"):
                band_units[i] = extra["unit"]
        self._scale = np.array([1.0 if s is None else s for s in scales], dtype=np.float64)
        self._offset = np.array([0.0 if o is None else o for o in offsets], dtype=np.float64)
        self._apply_scale = bool(np.any(self._scale != 1.0) or np.any(self._offset != 0.0))
        self._mask_bands = [any(f in ("per_dataset", "alpha") for f in infos[fi].mask_flags[b - 1])
                            for fi, b in self._band_map]
        raw_dtype = np.result_type(*dtypes) if len(dtypes) > 1 else ref.dtype
        self._raw_dtype = np.dtype(raw_dtype)
        self._handles: dict[int, Any] | None = None
        self._pid = None
        # one-shot hand-overs between read and read_mask of the same region (see _read): each
        # is used at most once, so a caller that modifies its array cannot change later reads
        self._last: tuple | None = None  # (bounds, nodata mask) of the last read
        self._pending_raw: tuple | None = None  # (bounds, stored values) of the last mask read

        names = list(channel_names) if channel_names is not None else self._channel_names(infos)
        if len(names) != len(self._band_map):
            raise ImageReadError(paths[0], f"{len(names)} channel names for {len(self._band_map)} bands")
        spacing, units = _spacing_units(ref.crs, ref.transform)
        meta: dict[str, Any] = {
            "crs": _crs_string(ref.crs),
            "transform": [float(v) for v in tuple(ref.transform)[:6]],
            "nodata": self._nodata[0] if len(set(map(repr, self._nodata))) == 1 else list(self._nodata),
            "level": level,
            "levels": 1 + min(len(i.overviews) for i in infos),  # a stack has the levels all files have
            "overviews": list(ref.overviews),
            "files": list(paths),
            "block_shape": list(ref.block_shape) if ref.block_shape else None,
            "tiled": ref.tiled,
            "compress": ref.compress,
        }
        if self._apply_scale:
            meta["scale"] = self._scale.tolist()
            meta["offset"] = self._offset.tolist()
        if source:
            meta["source"] = dict(source)
        if any(band_units):
            meta["value_unit"] = band_units[0] if len(set(band_units)) == 1 else band_units
        if resample is not None:
            meta["resample"] = resample
        dtype = np.float32 if self._apply_scale else self._raw_dtype
        # a stack is named by `name` (a band folder) or its first file; meta["files"] lists them all
        super().__init__(name or paths[0],
                         (len(self._band_map), ref.height, ref.width), "CYX", spacing, units,
                         names, dtype, meta)
        self._ref = ref
        self._infos = infos
        # a stack (band folder) keeps a file per band; one file's bands share its tiles
        self.channels_apart = len(paths) > 1

    @staticmethod
    def _tile_index(info: _FileInfo, level: int, warped: bool) -> TileIndex | None:
        """A direct tile reader for a local file GDAL would read with direct IO (uncompressed,
        tiled, larger than the block cache: `read_options`) at full resolution without warping,
        else None.

        Direct reads beat GDAL's direct IO (2 GiB file, 256² x 4 uint16: ~0.27 vs ~0.37 ms),
        but a file the block cache holds reads faster through it (50 MB: ~0.19 vs ~0.30 ms),
        so it keeps GDAL. Overviews keep rasterio: GDAL may take them from a .ovr sidecar, and
        which IFD is which level is GDAL's call.
        """
        if level != 0 or warped or not read_options(info.tiled, info.compress, info.nbytes):
            return None
        if not os.path.isfile(info.path):
            return None
        return TileIndex.from_file(info.path, (info.count, info.height, info.width), info.dtype,
                                   info.nodatavals)

    def _channel_names(self, infos: list[_FileInfo]) -> list[str]:
        """Band descriptions; else R, G, B (A) for a file whose bands are colour-interpreted as
        red, green, blue (alpha), as colour images are named everywhere (RGB-only views need it);
        else the file stem for single-band files in a list; else B1..Bn."""
        names = []
        for fi, band in self._band_map:
            info = infos[fi]
            desc = info.descriptions[band - 1]
            rgb = info.colour in (["red", "green", "blue"], ["red", "green", "blue", "alpha"])
            if desc:
                names.append(desc)
            elif rgb and not any(info.descriptions):
                names.append("RGBA"[band - 1])
            elif len(infos) > 1 and info.count == 1:
                names.append(Path(info.path).name.split(".")[0])
            elif len(infos) > 1:
                names.append(f"{Path(info.path).name.split('.')[0]}_B{band}")
            else:
                names.append(f"B{band}")
        if len(set(names)) != len(names):
            # duplicate descriptions would make channel names ambiguous for the encoder card
            names = [f"{n}_{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]
        return names

    # -- handles, one set per process -------------------------------------
    def _datasets(self) -> dict[int, Any]:
        if self._handles is None or self._pid != os.getpid():
            # a forked worker must not share GDAL handles with its parent: reopen
            self._handles, self._pid = {}, os.getpid()
        return self._handles

    def _dataset(self, fi: int):
        handles = self._datasets()
        ds = handles.get(fi)
        if ds is None:
            try:
                info = self._infos[fi]
                with _env(**read_options(info.tiled, info.compress, info.nbytes)):
                    ds = _open_dataset(self._paths[fi], self._level)
                if self._resampled[fi] and not self._scaled[fi]:
                    from rasterio.enums import Resampling
                    from rasterio.vrt import WarpedVRT

                    ds = WarpedVRT(ds, crs=self._ref.crs, transform=self._ref.transform,
                                   width=self._ref.width, height=self._ref.height,
                                   resampling=Resampling[self._resample])
            except Exception as exc:
                raise ImageReadError(self._paths[fi], f"cannot reopen ({exc})") from exc
            handles[fi] = ds
        return ds

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"] = None
        state["_pid"] = None
        state["_last"] = None
        state["_pending_raw"] = None
        return state

    def close(self) -> None:
        for ds in (self._handles or {}).values():
            ds.close()
        self._handles = None
        for tiles in self._tiles:
            if tiles is not None:
                tiles.close()
        self._last = self._pending_raw = None

    # -- reading ----------------------------------------------------------
    def _read_raw(self, bounds) -> np.ndarray:
        """Stored values of `bounds` as `(C, Y, X)` in the file dtype (no scale/offset)."""
        from rasterio.windows import Window

        (c0, c1), (y0, y1), (x0, x1) = bounds
        window = Window(x0, y0, x1 - x0, y1 - y0)
        out = np.empty((c1 - c0, y1 - y0, x1 - x0), dtype=self._raw_dtype)
        c = c0
        while c < c1:
            # consecutive bands of one file are one read
            fi, first_band = self._band_map[c]
            n = 1
            while c + n < c1 and self._band_map[c + n][0] == fi:
                n += 1
            bands = list(range(first_band, first_band + n))
            try:
                tiles = self._tiles[fi]
                if tiles is not None:
                    tiles.read(first_band - 1, first_band - 1 + n, y0, y1, x0, x1,
                               out[c - c0:c - c0 + n])
                    c += n
                    continue
                ds = self._dataset(fi)
                if self._scaled[fi]:
                    out[c - c0:c - c0 + n] = self._read_scaled(ds, fi, bands, bounds[1], bounds[2])
                elif self._infos[fi].dtype == out.dtype:
                    # straight into the output slice (contiguous along the band axis)
                    ds.read(bands, window=window, out=out[c - c0:c - c0 + n])
                else:  # a stack of files of mixed dtypes: rasterio's out= needs the file dtype
                    out[c - c0:c - c0 + n] = ds.read(bands, window=window)
            except ImageReadError:
                raise
            except Exception as exc:
                # rasterio's message is "Read failed. See previous exception for details.": the
                # GDAL error that says what broke is its cause
                why = f"{exc}: {exc.__cause__}" if exc.__cause__ is not None else str(exc)
                raise ImageReadError(self._paths[fi], f"window read {window} failed ({why})") from exc
            c += n
        return out

    def _read_scaled(self, ds, fi: int, bands: list[int], ys: tuple[int, int], xs: tuple[int, int]) -> np.ndarray:
        """Bands of file `fi` (on an axis-aligned grid of another pixel size) for the reference
        grid's rows `ys` and columns `xs`: GDAL reads the matching fractional window of the file
        and resamples it to the requested shape; nodata covers the pixels whose centres fall in
        nodata cells, as the warp would have it."""
        from rasterio.enums import Resampling
        from rasterio.windows import Window

        info, ref = self._infos[fi], self._ref
        sx, sy = ref.transform.a / info.transform.a, ref.transform.e / info.transform.e
        col = (ref.transform.c + xs[0] * ref.transform.a - info.transform.c) / info.transform.a
        row = (ref.transform.f + ys[0] * ref.transform.e - info.transform.f) / info.transform.e
        window = Window(col, row, (xs[1] - xs[0]) * sx, (ys[1] - ys[0]) * sy)
        eps = 1e-6
        inside = (col >= -eps and row >= -eps and col + window.width <= info.width + eps
                  and row + window.height <= info.height + eps)
        nodata = info.nodatavals[0]
        shape = (len(bands), ys[1] - ys[0], xs[1] - xs[0])
        fill = None if inside or nodata is None else nodata
        out = ds.read(bands, window=window, out_shape=shape, resampling=Resampling[self._resample],
                      boundless=not inside, fill_value=fill)
        if nodata is not None and self._resample != "nearest":
            # GDAL's resampled read interpolates around nodata, so a fine pixel whose centre lies in
            # a nodata cell (or outside the file) would get a value; the warp leaves it nodata.
            # The nearest read (its tiles are in the block cache now) gives that footprint back.
            centre = ds.read(bands, window=window, out_shape=shape, resampling=Resampling.nearest,
                             boundless=not inside, fill_value=fill)
            out[centre == nodata] = nodata  # (NaN nodata files are warped: see _scalable)
        if not inside:
            # pixels whose centres lie outside the file hold no data (the boundless read's edge
            # rounding may give the first of them a value)
            tr = ref.transform
            cols = (tr.c + (np.arange(xs[0], xs[1]) + 0.5) * tr.a - info.transform.c) / info.transform.a
            rows = (tr.f + (np.arange(ys[0], ys[1]) + 0.5) * tr.e - info.transform.f) / info.transform.e
            out[:, (rows < 0) | (rows >= info.height), :] = 0 if nodata is None else nodata
            out[:, :, (cols < 0) | (cols >= info.width)] = 0 if nodata is None else nodata
        return out

    def _nodata_rule(self, c0: int, n: int, dtype: np.dtype):
        """(check NaN?, one value for all bands or None, [(band, value)]) for bands c0..c0+n.

        Worked out once per channel range (it sits on the per-patch path). rasterio reports
        nodata as a float: integer pixels are compared in their own type (a float comparison
        casts the block to float64, several times slower); a value the type cannot hold never
        matches.
        """
        key = (c0, n, dtype.str)
        rule = self._nodata_rules.get(key)
        if rule is None:
            nodata = self._nodata[c0:c0 + n]
            values = [(i, nd) for i, nd in enumerate(nodata)
                      if nd is not None and not (isinstance(nd, float) and math.isnan(nd))]
            if dtype.kind in "ui":
                info = np.iinfo(dtype)
                values = [(i, dtype.type(nd)) for i, nd in values
                          if float(nd).is_integer() and info.min <= nd <= info.max]
            single = values[0][1] if len(values) == n and len({v for _, v in values}) == 1 else None
            rule = self._nodata_rules[key] = (dtype.kind == "f", single, values)
        return rule

    def _nodata_valid(self, raw: np.ndarray, c0: int) -> np.ndarray | None:
        """True where no band of `raw` (bands c0.. of the image) holds nodata; None if no pixel
        of `raw` is nodata (none can be, or, for one value in every band, none is).

        NaN counts as nodata in float bands even without a declared nodata value: float rasters
        written by numpy pipelines often carry NaN holes and no tag, and a NaN is never a value
        a model can use.
        """
        check_nan, single, values = self._nodata_rule(c0, raw.shape[0], raw.dtype)
        if not check_nan and not values:
            return None
        if single is not None and not check_nan:
            # one value for every band (the common case). Most patches hold none of it: a
            # value outside [min, max] rules the whole patch out in one SIMD reduction (~9 us
            # for 256² x 4 uint16; nodata 0 in unsigned data needs only the min) instead of
            # the ~25 us per-pixel compare below.
            low = raw.min() if raw.size else single  # (an empty region takes the path below)
            if single < low or (single > low and single > raw.max()):
                return None
            # valid where every band differs from it, band by band in place (no (C, Y, X)
            # temporary and no reduction over bands)
            valid = raw[0] != single
            for band in raw[1:]:
                valid &= band != single
            return valid
        invalid = np.isnan(raw).any(axis=0) if check_nan else None
        if single is not None:  # one value for every band: one vectorised pass
            hit = (raw == single).any(axis=0)
        elif values:
            hit = np.zeros(raw.shape[1:], dtype=bool)
            for i, nd in values:
                hit |= raw[i] == nd
        else:
            hit = None
        if hit is not None:
            invalid = hit if invalid is None else invalid | hit
        return ~invalid

    def _read(self, bounds) -> np.ndarray:
        if self._pending_raw is not None and self._pending_raw[0] == bounds:
            raw = self._pending_raw[1]  # decoded by read_mask just before (samplers check first)
        else:
            raw = self._read_raw(bounds)
        self._pending_raw = None
        c0, c1 = bounds[0]
        # samplers call read_mask right after read: keep the (small) mask of this region so that
        # call does not decode the window again; the data itself is never cached
        self._last = (bounds, self._nodata_valid(raw, c0))
        if not self._apply_scale:
            return raw
        scale = self._scale[c0:c1, None, None].astype(np.float32)
        offset = self._offset[c0:c1, None, None].astype(np.float32)
        return raw.astype(np.float32) * scale + offset

    def _read_mask(self, bounds) -> np.ndarray | None:
        c0, c1 = bounds[0]
        use_masks = self._mask_bands[c0:c1]
        if (all(v is None for v in self._nodata[c0:c1]) and not any(use_masks)
                and self._raw_dtype.kind != "f"):
            return None
        if self._last is not None and self._last[0] == bounds:
            valid = self._last[1]
            self._last = None  # handed out once: the caller may modify it
        else:
            raw = self._read_raw(bounds)
            valid = self._nodata_valid(raw, c0)
            # a sampler that checks the mask first reads the same region next: hand it over once
            self._pending_raw = (bounds, raw)
        if valid is None:
            valid = np.ones((bounds[1][1] - bounds[1][0], bounds[2][1] - bounds[2][0]), dtype=bool)
        if any(use_masks):
            # GDAL per-dataset masks and alpha bands (nodata is handled above without a second read)
            from rasterio.windows import Window

            (y0, y1), (x0, x1) = bounds[1], bounds[2]
            window = Window(x0, y0, x1 - x0, y1 - y0)
            for i, use in enumerate(use_masks):
                if use:
                    fi, band = self._band_map[c0 + i]
                    valid &= self._dataset(fi).read_masks(band, window=window) > 0
        return valid


def open_geotiff(path_or_paths, level: int = 0, resample: str | None = None, **kw) -> GeoTiffImage:
    """Open a GeoTIFF/COG, or a list of single-band GeoTIFFs stacked as bands, lazily.

    Args:
        path_or_paths: one file, or a list of files on the same grid (bands in list order;
            channel names from band descriptions, else file stems such as "B02").
        level: 0 for full resolution, k for the k-th COG overview (rasterio `overview_level`
            k-1); spacing follows the level.
        resample: None (grids must match), or a rasterio resampling name ("nearest",
            "bilinear", ...) to warp every file onto the first file's grid on read.

    Returns:
        A `GeoTiffImage`, axes "CYX", spacing (y, x) pixel size in the CRS units ("m" for
        projected, "deg" for geographic, "px" without CRS), meta with crs, transform, nodata
        and, where the file declares them, scale/offset (then dtype float32) and value_unit.

    Raises:
        ImageReadError: missing/unreadable file, level out of range, or mismatched grids.
    """
    if kw:
        raise TypeError(f"open_geotiff got unexpected options {sorted(kw)}")
    if isinstance(level, bool) or not isinstance(level, int) or level < 0:
        raise ImageReadError(str(path_or_paths), f"level must be an int >= 0, got {level!r}")
    paths = list(path_or_paths) if isinstance(path_or_paths, (list, tuple)) else [path_or_paths]
    return GeoTiffImage([os.fspath(p) for p in paths], level=level, resample=resample)
