"""`open_image(path)`: find the format of a path and hand it to its reader.

Format readers are imported only when used, so `import domainssl` stays light.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .errors import ImageReadError
from .image import LazyImage

DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
TIFF_SUFFIXES = (".tif", ".tiff")
PLAIN_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
ZARR_SUFFIXES = (".zarr",)

# TIFF tags that only GeoTIFFs carry (ModelPixelScale, ModelTiepoint, ModelTransformation,
# GeoKeyDirectory): their presence sends a .tif to rasterio instead of tifffile.
GEOTIFF_TAGS = (33550, 33922, 34264, 34735)


def _lower_name(path) -> str:
    return str(path).rstrip("/").lower()


def is_url(path) -> bool:
    return "://" in str(path)


def looks_like_dicom(path) -> bool:
    """True when the file has a DICOM suffix or the `DICM` preamble magic (header bytes only)."""
    p = str(path)
    if p.lower().endswith(DICOM_SUFFIXES):
        return True
    try:
        with open(p, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def looks_like_zarr(path) -> bool:
    """True for a `.zarr` path or a folder holding zarr v2/v3 metadata."""
    name = _lower_name(path)
    if name.endswith(ZARR_SUFFIXES):
        return True
    if is_url(path):
        return False
    p = Path(path)
    return p.is_dir() and any((p / f).exists() for f in ("zarr.json", ".zattrs", ".zgroup"))


def is_geotiff(path) -> bool:
    """True when the TIFF's first page carries GeoTIFF tags (reads the first IFD only)."""
    import tifffile

    from .tiff import _tifffile_warnings

    # tifffile logs what it finds damaged: collected here (not printed to the user's terminal)
    # and named in the error when the first page cannot be read
    with _tifffile_warnings() as logged:
        try:
            with tifffile.TiffFile(str(path)) as tif:
                tags = tif.pages.first.tags
                return any(code in tags for code in GEOTIFF_TAGS)
        except Exception as exc:  # any decoder failure is a read error with the file named
            said = f"; tifffile: {'; '.join(logged)}" if logged else ""
            raise ImageReadError(path, f"not a readable TIFF ({type(exc).__name__}: {exc}{said})") from exc


def detect_format(path) -> str | None:
    """Format name for a path ("dicom", "nifti", "geotiff", "tiff", "ome-zarr", "plain"), or None.

    Reads at most a TIFF's first IFD or a file's first 132 bytes.
    """
    if isinstance(path, (list, tuple)):
        return detect_format(path[0]) if path else None
    name = _lower_name(path)
    if looks_like_zarr(path):
        return "ome-zarr"
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(TIFF_SUFFIXES):
        if name.endswith((".ome.tif", ".ome.tiff")):
            return "tiff"
        return "geotiff" if is_geotiff(path) else "tiff"
    if name.endswith(PLAIN_SUFFIXES):
        return "plain"
    if not is_url(path) and os.path.isdir(path):
        from .band_folder import is_band_folder

        # a folder that is not zarr: one GeoTIFF per band of a scene, else a DICOM series folder
        return "geotiff" if is_band_folder(path) else "dicom"
    if looks_like_dicom(path):
        return "dicom"
    return None


def open_image(path, *, series: str | None = None, level: int = 0, **kwargs) -> LazyImage:
    """Open an image lazily: headers only, pixels on `read(region)`.

    Args:
        path: a file, a DICOM series folder, an OME-Zarr folder or URL, a band folder (one
            GeoTIFF per band of a scene, e.g. Sentinel-2 B01.tif..B12.tif: one image on the
            finest band's grid, see `band_folder`), or a list of files (DICOM slices of one
            series, or single-band GeoTIFFs to stack as bands in list order).
        series: DICOM SeriesInstanceUID when a folder holds several series; for
            multi-series TIFF/OME files, the series index as a string or int.
        level: pyramid level for OME-Zarr / OME-TIFF / COG overviews (0 = full resolution).
        **kwargs: passed to the format's reader.

    Returns:
        A `LazyImage` with channel-first `shape`, `axes`, `spacing`, `units`,
        `channel_names`, `dtype`, `meta` and `read(region)`.

    Raises:
        ImageReadError: the path is missing, of unknown format, or unreadable.
    """
    paths = list(path) if isinstance(path, (list, tuple)) else None
    first = paths[0] if paths else path
    if paths is not None and not paths:
        raise ImageReadError("<empty list>", "no files given")
    if not is_url(first) and not os.path.exists(first):
        raise ImageReadError(first, "no such file or folder")
    if paths is None and "format" not in kwargs and not is_url(path) and os.path.isdir(path) \
            and not looks_like_zarr(path):
        from .band_folder import band_files, open_band_folder

        found = band_files(path)  # read once here, not again in detect_format
        if found:
            return open_band_folder(path, level=level, found=found, **kwargs)
    fmt = kwargs.pop("format", None) or detect_format(path)
    _refuse_unused(first, fmt, level=level, series=series)
    if fmt == "dicom":
        from .dicom import open_dicom

        return open_dicom(paths if paths is not None else path, series=series, **kwargs)
    if fmt == "nifti":
        from .nifti import open_nifti

        return open_nifti(path, **kwargs)
    if fmt == "geotiff":
        if paths is None and not is_url(path) and os.path.isdir(path):
            from .band_folder import open_band_folder

            return open_band_folder(path, level=level, **kwargs)  # format="geotiff" given
        from .geotiff import open_geotiff

        return open_geotiff(paths if paths is not None else path, level=level, **kwargs)
    if fmt == "tiff":
        from .tiff import open_tiff

        return open_tiff(path, series=series, level=level, **kwargs)
    if fmt == "ome-zarr":
        from .omezarr import open_ome_zarr

        return open_ome_zarr(path, level=level, **kwargs)
    if fmt == "plain":
        from .plain import open_plain

        return open_plain(path, **kwargs)
    raise ImageReadError(first, "unknown format: expected DICOM, NIfTI (.nii/.nii.gz), GeoTIFF/COG, "
                         "TIFF/OME-TIFF, OME-Zarr or PNG/JPEG")


# What each format can honour: a pyramid level (overviews / multiscales) and a series choice.
_HAS_LEVELS = ("geotiff", "tiff", "ome-zarr")
_HAS_SERIES = ("dicom", "tiff")


def _refuse_unused(path, fmt, *, level, series) -> None:
    """A level or series the format has no notion of would be silently ignored (a user asking
    for level 1 of a NIfTI would get the full-resolution volume): refuse it instead."""
    if level not in (0, None) and fmt in ("dicom", "nifti", "plain"):
        raise ImageReadError(path, f"level={level} asked, but {fmt} images have no pyramid levels "
                             f"(levels exist for {', '.join(_HAS_LEVELS)}): open it with level=0")
    if series is not None and fmt in ("nifti", "geotiff", "ome-zarr", "plain"):
        raise ImageReadError(path, f"series={series!r} asked, but a {fmt} image holds one series "
                             f"(series exist for {', '.join(_HAS_SERIES)}): leave series out")


def open_images(paths: Sequence) -> list[LazyImage]:
    """Open several images (convenience for tests and small scripts)."""
    return [open_image(p) for p in paths]
