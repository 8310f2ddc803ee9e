"""Small generators of edge-case rasters for the reader tests (GeoTIFF, TIFF), written to tmp_path.

Every generator returns the path it wrote and, where useful, the array a reader must return, so
tests compare values rather than shapes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_geotiff(path: Path, data: np.ndarray, *, crs="EPSG:32633", pixel=10.0,
                  origin=(500000.0, 4000000.0), nodata=None, scales=None, offsets=None,
                  descriptions=None, units=None, **profile) -> Path:
    """Write `data` (C, Y, X) as a GeoTIFF with a north-up grid of `pixel` metres from `origin` (x, y)."""
    import rasterio
    from affine import Affine

    count, height, width = data.shape
    kwargs = dict(driver="GTiff", width=width, height=height, count=count, dtype=data.dtype,
                  crs=crs, transform=Affine(pixel, 0.0, origin[0], 0.0, -pixel, origin[1]))
    if nodata is not None:
        kwargs["nodata"] = nodata
    kwargs.update(profile)
    with rasterio.open(path, "w", **kwargs) as ds:
        ds.write(data)
        if scales is not None:
            ds.scales = scales
        if offsets is not None:
            ds.offsets = offsets
        if descriptions is not None:
            for i, d in enumerate(descriptions, start=1):
                ds.set_band_description(i, d)
        if units is not None:
            ds.units = units
    return Path(path)


def ramp_value(y: np.ndarray, x: np.ndarray, band: int = 0) -> np.ndarray:
    """The value the large generated GeoTIFF holds at (band, y, x): a wrap-around ramp (uint16)."""
    return ((y.astype(np.int64) * 7 + x.astype(np.int64) * 3 + band * 1000) % 65521).astype(np.uint16)


def write_large_tiled_geotiff(path: Path, size: int = 8000, bands: int = 2, tile: int = 512) -> Path:
    """A `bands`×`size`×`size` uint16 tiled, deflate-compressed GeoTIFF holding `ramp_value`.

    Written strip by strip so the generator never holds the whole array (128 MB per band).
    """
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    profile = dict(driver="GTiff", width=size, height=size, count=bands, dtype="uint16",
                   crs="EPSG:32633", transform=Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0),
                   tiled=True, blockxsize=tile, blockysize=tile, compress="deflate", zlevel=1)
    x = np.arange(size)
    with rasterio.Env(GDAL_NUM_THREADS="1"), rasterio.open(path, "w", **profile) as ds:
        for y0 in range(0, size, tile):
            y = np.arange(y0, min(y0 + tile, size))
            block = np.stack([ramp_value(y[:, None], x[None, :], b) for b in range(bands)])
            ds.write(block, window=Window(0, y0, size, len(y)))
    return Path(path)


def truncate_copy(src: Path, dst: Path, keep_fraction: float = 0.5) -> Path:
    """Copy the first `keep_fraction` of `src`'s bytes to `dst` (a file cut off mid-download)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * keep_fraction)])
    return Path(dst)


def corrupt_last_tile(path: Path) -> None:
    """Overwrite the compressed bytes of the first page's last tile/strip with garbage.

    A reader that decodes only the tiles a region touches still reads every other region; a full
    read must fail on that tile.
    """
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        offset, count = page.dataoffsets[-1], page.databytecounts[-1]
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(bytes(range(7, 7 + min(count, 200))))
