"""Band folders: a scene stored as one single-band GeoTIFF per spectral band, read as one image.

Sentinel-2 COGs (B01.tif ... B12.tif, B8A.tif next to TCI/SCL/AOT/WVP), Landsat Collection 2
(..._SR_B4.TIF) and SAFE-style names (..._B8A_20m.tif) ship a scene this way, with bands at
different resolutions (Sentinel-2: 10, 20 and 60 m). A folder with two or more such band files
opens as one `(C, Y, X)` GeoTIFF stack: bands in spectral order (B08 < B8A < B09), named by
their band ("B02", "B8A"), every band resampled on read onto the finest grid that two bands share
(Sentinel-2's 10 m; Landsat's 30 m, not its lone 15 m panchromatic band). A
folder with two files of one band (several scenes) or band-named files that are not GeoTIFFs
(a well plate's B01.tif) is not a band folder: its files stay images of their own.
Files that are not bands (true colour, scene classes, aerosol, water vapour) stay images of
their own. A STAC item beside the bands supplies the scale and offset the files lack (see
`stac_band_values`). The stack itself is `geotiff.GeoTiffImage`.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Sequence

from .errors import ImageReadError

BAND_SUFFIXES = (".tif", ".tiff")

# A band name at the end of the file stem: "B02", "..._B8A", "..._SR_B4", "..._B8A_20m"; bands
# 1-12 (Sentinel-2 B01-B12 and B8A, Landsat B1-B11), so "..._b0" (a diffusion b-value) is not one.
# B01..B12, B8A, optionally "_20m" (SAFE); Landsat 7 ETM+ L1 keeps two gains of its thermal band
# as B6_VCID_1 / B6_VCID_2 (two bands, not two scenes).
_BAND_STEM = re.compile(r"(?:^|[_\-.])(B(0?[1-9]|1[0-2])(A|_VCID_[12])?)(?:_\d+m)?$", re.IGNORECASE)

# Upsampling 20/60 m bands to the finest grid: bilinear (a smooth surface, no blocks).
DEFAULT_RESAMPLE = "bilinear"


def band_name(filename: str) -> str | None:
    """The band a file holds, from its name ("B02.tif" -> "B02", "LC08_..._SR_B4.TIF" -> "B4",
    "T29RKH_..._B8A_20m.tif" -> "B8A", "LE07_..._B6_VCID_1.TIF" -> "B6_VCID_1"), or None when
    the name is not a band's ("TCI.tif")."""
    name = os.path.basename(filename)
    low = name.lower()
    if not low.endswith(BAND_SUFFIXES):
        return None
    stem = name[:-len(next(s for s in BAND_SUFFIXES if low.endswith(s)))]
    match = _BAND_STEM.search(stem)
    return match.group(1).upper() if match else None


def _band_order(name: str) -> tuple[int, int]:
    number, suffix = re.fullmatch(r"B(\d{1,2})(A|_VCID_[12])?", name).groups()
    # B08 < B8A < B09; B6_VCID_1 < B6_VCID_2 < B7
    return int(number), 0 if not suffix else (1 if suffix == "A" else int(suffix[-1]))


def _named_bands(folder) -> list[tuple[str, str]]:
    """(band name, path) of every band-named file directly in `folder`, in name order."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    found = [(band_name(name), os.path.join(folder, name)) for name in names]
    return [(band, path) for band, path in found if band is not None and os.path.isfile(path)]


def _is_geotiff_cached(path: str) -> bool:
    """`open.is_geotiff`, remembered per (path, size, modification time): a worker reopens a band
    folder whenever it falls out of its open-image cache, and reading every band's first IFD
    again was about 3 of the 21 ms an open costs (12 Sentinel-2 bands)."""
    st = os.stat(path)
    return _geotiff_verdict(path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _geotiff_verdict(path: str, size: int, mtime_ns: int) -> bool:
    from .open import is_geotiff

    return is_geotiff(path)


def band_files(folder) -> list[tuple[str, str]]:
    """(band name, path) of the band files directly in `folder`, in spectral order, when the
    folder is one scene's bands: two or more band-named GeoTIFFs (georeferenced TIFFs), one file
    per band. Otherwise empty, and the files are images of their own: a folder of several scenes
    (two files of one band), well-plate TIFFs named B01.tif, B02.tif (not georeferenced), one band."""
    found: dict[str, str] = {}
    for band, path in _named_bands(folder):
        if band in found:
            return []
        found[band] = path
    if len(found) < 2:
        return []
    for path in found.values():
        try:
            if not _is_geotiff_cached(path):
                return []
        except ImageReadError:
            continue  # unreadable: still the scene's band; opening the folder names the file
    return [(band, found[band]) for band in sorted(found, key=_band_order)]


def is_band_folder(path) -> bool:
    """True for a folder (not a Zarr store) holding one scene's bands (see `band_files`)."""
    return (os.path.isdir(path) and not str(path).lower().rstrip("/").endswith(".zarr")
            and bool(band_files(path)))


def stac_band_values(folder, files: Sequence[str]) -> tuple[list[dict | None] | None, dict | None]:
    """Per band file, the value facts a STAC item in `folder` gives for it: {scale, offset,
    unit}, from the asset whose href names the file (`raster:bands`; unit "reflectance" for
    assets with that role). Returns (one dict or None per file, a summary of the item), or
    (None, None) without a matching item.

    Why: Sentinel-2 L2A COGs hold digital numbers; that reflectance = DN x 1e-4 + offset, with
    offset -0.1 since processing baseline 04.00 (2022) and 0 before, is written only in the STAC
    item. Read as DN, scenes from before and after 2022 differ by 1000 for the same ground.
    """
    import json

    for candidate in sorted(Path(folder).glob("*.json")):
        try:
            item = json.loads(candidate.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(item, dict) or item.get("type") != "Feature" or not isinstance(item.get("assets"), dict):
            continue
        by_file: dict[str, dict] = {}
        for asset in item["assets"].values():
            href = asset.get("href") if isinstance(asset, dict) else None
            if not href:
                continue
            raster = (asset.get("raster:bands") or [{}])[0]
            values = {k: float(raster[k]) for k in ("scale", "offset") if raster.get(k) is not None}
            if "reflectance" in (asset.get("roles") or []):
                values["unit"] = "reflectance"
            elif raster.get("unit"):
                values["unit"] = str(raster["unit"])
            by_file.setdefault(href.split("?")[0].rsplit("/", 1)[-1], values)
        found = [by_file.get(os.path.basename(f)) or None for f in files]
        if any(found):
            props = item.get("properties") or {}
            source = {"stac_item": candidate.name, "id": item.get("id"),
                      "datetime": props.get("datetime"),
                      "processing_baseline": props.get("s2:processing_baseline")}
            return found, {k: v for k, v in source.items() if v is not None}
    return None, None


def open_band_folder(folder, level: int = 0, resample: str = DEFAULT_RESAMPLE,
                     bands: Sequence[str] | None = None, found: list[tuple[str, str]] | None = None):
    """Open a band folder as one lazy GeoTIFF stack (see the module docstring).

    Args:
        folder: the folder; its path is the image's path (a manifest record reopens it).
        level: COG overview level, as for `open_geotiff` (every band file needs that level).
        resample: rasterio resampling name used for bands not on the finest grid.
        bands: only these bands, in this order (e.g. ["B04", "B03", "B02"]); default all.
        found: `band_files(folder)` when the caller has it already (it reads each file's header).

    Returns:
        A `GeoTiffImage` of shape (n_bands, Y, X) on the finest shared grid, channel names the
        band names, meta["files"] the band files, meta["resample"] the resampling. With a STAC
        item beside the bands (`stac_band_values`), its scale/offset apply where the files
        declare none (values then float32, e.g. reflectance) and meta["source"] names the item.
    """
    from .geotiff import GeoTiffImage

    folder = os.fspath(folder)
    found = band_files(folder) if found is None else found
    if not found:
        raise ImageReadError(folder, "not a band folder: expected two or more GeoTIFFs named by band "
                             "(B02.tif, ..._B8A_20m.tif, ..._SR_B4.TIF), one file per band")
    if bands is not None:
        by_name = dict(found)
        missing = [b for b in bands if b.upper() not in by_name]
        if missing:
            raise ImageReadError(folder, f"bands {missing} not in the folder (it has {list(by_name)})")
        found = [(b.upper(), by_name[b.upper()]) for b in bands]
    names = [band for band, _ in found]
    paths = [path for _, path in found]
    band_values, source = stac_band_values(folder, paths)
    return GeoTiffImage(paths, level=level, resample=resample, grid="finest", channel_names=names,
                        name=folder, band_values=band_values, source=source)
