"""DICOM reader: one lazy volume per series (or one image per file), pixels on demand.

`open_dicom(folder | files | file | SeriesInfo, series=uid)` reads headers only (see
`dicom_series`); `read(region)` decodes only the slice files (or frames) in the
region's z-range and crops rows/columns right after. Uncompressed single-sample
pixels are read by seeking straight to the bytes of the needed rows (offset found
once from the header), everything else goes through pydicom's decoders (pylibjpeg,
openjpeg, RLE, ...).

Uneven slices (mixed thickness, missing slices): by default (`z_grid="regular"`) the series
is presented on a regular grid at the median step, each plane interpolated linearly between
the two nearest stored slices, so that a patch of N mm is N mm everywhere in the volume and the
affine holds for every index; `z_grid="slices"` keeps the stored slices (the z spacing is then
the median step only). Evenly spaced series are never resampled.

Values: RescaleSlope/Intercept are applied per slice (per frame for enhanced files)
and `read()` returns float32; CT values are in HU (`meta["value_unit"]`).
Axes: a single-frame file is `CYX`; a series of slices or a multi-frame file is
`CZYX` with z along the slice normal. C is 1 (named after the modality, e.g. "CT")
or 3 for colour data (RGB, YBR converted to RGB, palette colour applied), named R, G, B.
"""

from __future__ import annotations

import itertools
import os
from typing import Sequence

import numpy as np

from .dicom_geometry import series_geometry, warn_at_caller
from .dicom_series import NOT_AN_IMAGE, DicomHeader, SeriesInfo, index_dicom_files, index_with_errors
from .errors import ImageReadError
from .image import LazyImage

__all__ = ["NOT_AN_IMAGE", "DicomImage", "SeriesInfo", "index_dicom_files", "list_dicom_files", "open_dicom"]

# Packages that provide pydicom decoders, by transfer-syntax family (for error messages).
_DECODER_HINTS = {
    "1.2.840.10008.1.2.4.9": "pylibjpeg pylibjpeg-openjpeg (JPEG 2000)",
    "1.2.840.10008.1.2.4.8": "pyjpegls or pylibjpeg pylibjpeg-libjpeg (JPEG-LS)",
    "1.2.840.10008.1.2.4.5": "pylibjpeg pylibjpeg-libjpeg (JPEG)",
    "1.2.840.10008.1.2.4.7": "pylibjpeg pylibjpeg-libjpeg (JPEG lossless)",
    "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle (RLE) or numpy only",
    "1.2.840.10008.1.2.4.20": "pylibjpeg pylibjpeg-openjpeg (HTJ2K)",
}
_COLOUR_NAMES = ["R", "G", "B"]
Z_GRIDS = ("regular", "slices")


def _value_unit(header: DicomHeader) -> str:
    """What a rescaled value means: HU for CT, else the RescaleType, else unspecified."""
    rescale_type = (header.rescale_type or "").strip()
    if header.modality == "CT" and rescale_type in ("", "HU", "US"):
        return "HU"
    if rescale_type and rescale_type != "US":  # "US" is DICOM's "unspecified"
        return rescale_type
    return "unspecified"


def _check_decoder(path: str, transfer_syntax: str) -> None:
    """Fail at open (headers only) when no installed plugin can decode this encoding."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    uid = UID(transfer_syntax)
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise ImageReadError(path, f"transfer syntax {uid.name} ({uid}) has no pixel decoder in "
                             "pydicom") from None
    if not decoder.is_available:
        hint = next((v for k, v in _DECODER_HINTS.items() if str(uid).startswith(k)),
                    "; ".join(decoder.missing_dependencies))
        raise ImageReadError(path, f"no decoder installed for {uid.name}: pip install {hint}")


class DicomImage(LazyImage):
    """A DICOM series or file as a lazy channel-first float32 image.

    Attributes (beyond `LazyImage`):
        headers: the `DicomHeader` of every file, in the order given.
        planes: one `Plane` per stored slice (file, frame, slope, intercept), ordered along
            the slice normal.
        files: the files of the planes in z order.
        z_grid: None, or for uneven slices resampled onto a regular grid (`z_grid="regular"`)
            `(lower slice index, weight)` per z index (see `regular_z_grid`).
    """

    format = "dicom"

    def __init__(self, source: str, headers: Sequence[DicomHeader], z_grid: str = "regular"):
        if z_grid not in Z_GRIDS:
            raise ImageReadError(source, f"z_grid={z_grid!r}: expected one of {Z_GRIDS}")
        headers = list(headers)
        ref = headers[0]
        for ts in sorted({h.transfer_syntax for h in headers}):
            _check_decoder(next(h.path for h in headers if h.transfer_syntax == ts), ts)
        if ref.samples not in (1, 3):
            raise ImageReadError(ref.path, f"SamplesPerPixel {ref.samples} (expected 1 or 3)")
        geometry = series_geometry(headers, source=source, regular_z=z_grid == "regular")
        self.headers = headers
        self.planes = geometry.planes
        self.files = [headers[p.header_index].path for p in self.planes]
        self.z_grid = geometry.z_grid

        colour = ref.samples == 3 or ref.photometric == "PALETTE COLOR"
        channel_names = _COLOUR_NAMES if colour else [ref.modality or "intensity"]
        volume = ref.multi_frame or len(self.planes) > 1
        z_mm, y_mm, x_mm = geometry.spacing_zyx
        z_unit, y_unit, x_unit = geometry.units_zyx
        if volume:
            depth = len(self.z_grid[0]) if self.z_grid is not None else len(self.planes)
            shape = (len(channel_names), depth, ref.rows, ref.cols)
            axes, spacing, units = "CZYX", (z_mm, y_mm, x_mm), (z_unit, y_unit, x_unit)
        else:
            shape = (len(channel_names), ref.rows, ref.cols)
            axes, spacing, units = "CYX", (y_mm, x_mm), (y_unit, x_unit)

        slopes = {p.slope for p in self.planes}
        intercepts = {p.intercept for p in self.planes}
        meta = dict(geometry.meta)
        meta.update({
            "series_uid": ref.series_uid,
            "modality": ref.modality,
            "description": ref.description,
            "value_unit": _value_unit(ref),
            "photometric": ref.photometric,
            "transfer_syntax": sorted({h.transfer_syntax for h in headers}),
            "n_files": len(headers),
            "rescale": ({"slope": self.planes[0].slope, "intercept": self.planes[0].intercept}
                        if len(slopes) == 1 and len(intercepts) == 1 else "per slice"),
            "pixel_spacing_source": ref.spacing_source,
        })
        if ref.photometric == "MONOCHROME1":
            meta["note"] = "MONOCHROME1: low values display bright; values are not inverted"
        super().__init__(source, shape, axes, spacing, units, channel_names, np.float32, meta)

    def describe(self) -> dict:
        """Header facts for the manifest, plus `series` (the SeriesInstanceUID) so that a
        folder holding several series can be reopened with `open_image(path, series=...)`."""
        out = super().describe()
        out["series"] = self.meta["series_uid"]
        return out

    # -- pixels -------------------------------------------------------------
    def _read(self, bounds: list[tuple[int, int]]) -> np.ndarray:
        if self.axes == "CZYX":
            (c0, c1), (z0, z1), (y0, y1), (x0, x1) = bounds
        else:
            (c0, c1), (y0, y1), (x0, x1) = bounds
            z0, z1 = 0, 1
        if self.z_grid is None:
            out = self._read_planes((c0, c1), (z0, z1), (y0, y1), (x0, x1))
            return out if self.axes == "CZYX" else out[:, 0]
        # a regular grid over uneven slices: read the stored slices the planes lie between
        lower, weight = self.z_grid[0][z0:z1], self.z_grid[1][z0:z1]
        first, last = int(lower.min()), int(lower.max()) + (1 if weight.max() > 0 else 0)
        stored = self._read_planes((c0, c1), (first, last + 1), (y0, y1), (x0, x1))
        out = np.empty((c1 - c0, z1 - z0, y1 - y0, x1 - x0), dtype=np.float32)
        for k, (i, w) in enumerate(zip(lower - first, weight)):
            if w == 0.0:
                out[:, k] = stored[:, i]
            else:
                np.add(stored[:, i] * np.float32(1.0 - w), stored[:, i + 1] * np.float32(w), out=out[:, k])
        return out

    def _read_planes(self, c: tuple[int, int], z: tuple[int, int], y: tuple[int, int],
                     x: tuple[int, int]) -> np.ndarray:
        """Stored planes z[0]:z[1] (rows y, columns x, channels c), rescaled: float32 (C, Z, Y, X)."""
        (c0, c1), (z0, z1), (y0, y1), (x0, x1) = c, z, y, x
        out = np.empty((c1 - c0, z1 - z0, y1 - y0, x1 - x0), dtype=np.float32)
        indexed = list(enumerate(self.planes[z0:z1]))
        for header_index, group in itertools.groupby(indexed, key=lambda t: t[1].header_index):
            group = list(group)
            header = self.headers[header_index]
            frames = [plane.frame for _, plane in group]
            blocks = _decode(header, frames, (y0, y1), (x0, x1))
            for (zi, plane), block in zip(group, blocks):
                # block: (rows, cols, samples) stored values -> channel-first, rescaled
                values = np.moveaxis(block[..., c0:c1], -1, 0)
                if plane.slope == 1.0 and float(plane.intercept).is_integer():
                    # integer shift (CT's -1024): exact in float32, no float64 temporary
                    np.copyto(out[:, zi], values, casting="unsafe")
                    if plane.intercept:
                        out[:, zi] += np.float32(plane.intercept)
                else:
                    # fractional rescale in float64 then rounded once, as pydicom's apply_rescale
                    np.copyto(out[:, zi], values * plane.slope + plane.intercept, casting="unsafe")
        return out


def _decode(header: DicomHeader, frames: list[int | None], rows: tuple[int, int],
            cols: tuple[int, int]) -> list[np.ndarray]:
    """Stored pixel values of `frames` of one file, cropped: a list of (h, w, samples) arrays."""
    if (header.pixel_offset is not None and header.samples == 1
            and header.photometric.startswith("MONOCHROME")):
        return _read_native_rows(header, frames, rows, cols)
    return _decode_with_pydicom(header, frames, rows, cols)


def _read_native_rows(header: DicomHeader, frames: list[int | None], rows: tuple[int, int],
                      cols: tuple[int, int]) -> list[np.ndarray]:
    """Seek to the needed rows of each frame and read only their bytes.

    Hand-written instead of pydicom's decoder because that re-parses the header on every
    call; the offset was found once at open. Unused high bits are corrected exactly as
    pydicom does (shift left, then arithmetic shift right).
    """
    from pydicom.uid import UID

    little = UID(header.transfer_syntax).is_little_endian
    kind = "i" if header.pixel_representation == 1 else "u"
    itemsize = header.bits_allocated // 8
    dtype = np.dtype(f"{'<' if little else '>'}{kind}{itemsize}")
    row_bytes = header.cols * itemsize
    y0, y1 = rows
    x0, x1 = cols
    nbytes = (y1 - y0) * row_bytes
    shift = header.bits_allocated - header.bits_stored
    out = []
    try:
        with open(header.path, "rb") as fh:
            for frame in frames:
                fh.seek(header.pixel_offset + (frame or 0) * header.frame_nbytes + y0 * row_bytes)
                buf = fh.read(nbytes)
                if len(buf) != nbytes:
                    raise ImageReadError(header.path, f"truncated: pixel rows {y0}:{y1} of frame "
                                         f"{frame or 0} need {nbytes} bytes, the file has "
                                         f"{len(buf)} left")
                arr = np.frombuffer(buf, dtype=dtype).reshape(y1 - y0, header.cols)[:, x0:x1]
                if not dtype.isnative:
                    arr = arr.astype(dtype.newbyteorder("="))
                if shift:
                    arr = np.right_shift(np.left_shift(arr, shift), shift)
                out.append(arr[..., None])
    except OSError as exc:
        raise ImageReadError(header.path, f"cannot read pixel data ({exc})") from exc
    return out


def _decode_with_pydicom(header: DicomHeader, frames: list[int | None], rows: tuple[int, int],
                         cols: tuple[int, int]) -> list[np.ndarray]:
    """Decode frames with pydicom (compressed, colour, palette, bit-packed), then crop."""
    from pydicom import Dataset
    from pydicom.pixels import apply_color_lut, iter_pixels, pixel_array

    y0, y1 = rows
    x0, x1 = cols
    ds = Dataset()
    decoded: dict[int | None, np.ndarray] = {}
    try:
        if header.multi_frame or header.n_frames > 1:
            wanted = sorted({f or 0 for f in frames})
            for index, arr in zip(wanted, iter_pixels(header.path, ds_out=ds, indices=wanted)):
                decoded[index] = arr
        else:
            decoded[0] = pixel_array(header.path, ds_out=ds)
        out = []
        for frame in frames:
            arr = decoded[frame or 0]
            if arr.ndim == 2:
                arr = arr[..., None]
            arr = arr[y0:y1, x0:x1]
            if header.photometric == "PALETTE COLOR":
                arr = apply_color_lut(arr[..., 0], ds)
            out.append(arr)
    except ImageReadError:
        raise
    except Exception as exc:  # decoder errors come in many types; name the file and the cause
        raise ImageReadError(header.path, f"cannot decode pixel data ({header.transfer_syntax}): "
                             f"{type(exc).__name__}: {exc}") from exc
    return out


# ---------------------------------------------------------------------------------
# opening
# ---------------------------------------------------------------------------------
def list_dicom_files(folder) -> list[str]:
    """DICOM-looking files under `folder` (recursive, sorted): DICOM suffix or DICM magic."""
    from .open import looks_like_dicom

    found = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            if looks_like_dicom(path):
                found.append(path)
    return found


def _series_listing(series: Sequence[SeriesInfo]) -> str:
    return "\n  ".join(s.summary() for s in series)


def open_dicom(path_or_files, series: str | None = None, z_grid: str = "regular") -> DicomImage:
    """Open a DICOM series or file lazily (headers only).

    Args:
        path_or_files: a folder (searched recursively for DICOM files), a list of
            files, a single file, or a `SeriesInfo` from `index_dicom_files` (its
            parsed headers are reused, nothing is read again).
        series: the SeriesInstanceUID to open when the input holds several series.
        z_grid: "regular" (default): slices at uneven positions are resampled onto a regular
            grid at the median step (linear interpolation); "slices": the stored slices as
            they are.

    Returns:
        `DicomImage`: `CZYX` (C, slices, rows, cols) for a series or multi-frame
        file, `CYX` for a single-frame file; spacing in mm (z = median step along the
        slice normal, y/x = PixelSpacing); float32 values with rescale applied.

    Raises:
        ImageReadError: several series and no (or an unknown) `series`; unreadable,
            truncated or inconsistent files (the file is named; with `series` given,
            broken files of other or unknown series only warn); no decoder installed.
    """
    if isinstance(path_or_files, SeriesInfo):
        info = path_or_files
        if series is not None and series != info.uid:
            raise ImageReadError(info.files[0], f"series {series!r} requested, SeriesInfo is {info.uid}")
        source = os.path.commonpath(info.files) if len(info.files) > 1 else info.files[0]
        return DicomImage(source, info.headers, z_grid)

    if isinstance(path_or_files, (list, tuple)):
        files = [str(p) for p in path_or_files]
        if not files:
            raise ImageReadError("<empty list>", "no DICOM files given")
        source = os.path.commonpath(files) if len(files) > 1 else files[0]
    elif os.path.isdir(path_or_files):
        source = str(path_or_files)
        files = list_dicom_files(source)
        if not files:
            raise ImageReadError(source, "folder holds no DICOM files (none with a .dcm/.dicom/.ima "
                                 "suffix or a DICM preamble)")
    else:
        source = str(path_or_files)
        files = [source]

    found, errors = index_with_errors(files)
    if len(files) == 1 and errors:
        raise errors[0]
    broken = [e for e in errors if not e.reason.startswith(NOT_AN_IMAGE)]
    if series is not None:
        # a chosen series opens despite broken files that are not (known to be) its own,
        # so a manifest entry (folder + series) reopens like the scan opened it
        others = [e for e in broken if e.series_uid != str(series)]
        if others:
            warn_at_caller(f"{source}: ignored {len(others)} unreadable DICOM file(s) outside series "
                           f"{series}: " + "; ".join(str(e) for e in others[:5]), UserWarning)
        broken = [e for e in broken if e.series_uid == str(series)]
    if broken:
        listing = "\n  ".join(f"{e.path}: {e.reason}" for e in broken[:20])
        more = f"\n  ... and {len(broken) - 20} more" if len(broken) > 20 else ""
        raise ImageReadError(broken[0].path if len(broken) == 1 else source,
                             f"{len(broken)} unreadable DICOM file(s):\n  {listing}{more}\n"
                             "remove them or pass the list of good files")
    if not found:
        raise ImageReadError(source, "no DICOM images found (only non-image objects: "
                             + "; ".join(e.reason for e in errors[:3]) + ")")
    if series is not None:
        chosen = [s for s in found if s.uid == str(series)]
        if not chosen:
            raise ImageReadError(source, f"series {series!r} not found; series here:\n  "
                                 f"{_series_listing(found)}")
        info = chosen[0]
    elif len(found) > 1:
        raise ImageReadError(source, f"holds {len(found)} DICOM series; choose one with "
                             f"series=<SeriesInstanceUID>:\n  {_series_listing(found)}")
    else:
        info = found[0]
    return DicomImage(source, info.headers, z_grid)
