"""DICOM headers: read them once and group files into series.

Everything here reads headers only (`dcmread(stop_before_pixels=True)`); pixels are the
job of `domainssl.io.dicom`. The facts a reader needs later (size, encoding, rescale,
position, where the native pixel bytes start) are copied out of each dataset into a
small `DicomHeader` record so that a series of thousands of files holds no pydicom
objects in memory and pickles cheaply into DataLoader workers.
Slice order, spacing and the affine are worked out in `dicom_geometry`.
"""

from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass
from typing import Iterable

from .errors import ImageReadError

PIXEL_DATA_TAG = 0x7FE00010
# VRs whose explicit-VR element header has 2 reserved bytes and a 4-byte length.
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"SQ", b"UT", b"UC", b"UR"}
# Reason prefix for DICOM objects without pixels (DICOMDIR, SR, presentation states):
# not images, so a series folder that holds them still opens.
NOT_AN_IMAGE = "not an image"
# Frames of one enhanced file whose orientations differ by more than this (direction
# cosines) are several stacks, not one volume.
_ORIENTATION_TOL = 1e-3


class DicomFileError(ImageReadError):
    """An unusable DICOM file; `series_uid` is the series its header names ('' if unknown)."""

    def __init__(self, path, reason: str, series_uid: str = ""):
        super().__init__(path, reason)
        self.series_uid = series_uid


@dataclass
class DicomHeader:
    """The facts of one DICOM file needed to place and decode its pixels.

    Positions/orientations are LPS mm and direction cosines; `pixel_spacing` is
    (row spacing, column spacing) in mm, i.e. (y, x). Per-frame lists are set for
    multi-frame (enhanced) files that carry functional groups.
    """

    path: str
    series_uid: str
    sop_uid: str
    modality: str
    description: str
    series_number: int | None
    instance_number: int | None
    rows: int
    cols: int
    samples: int
    photometric: str
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    planar_configuration: int
    n_frames: int
    multi_frame: bool
    transfer_syntax: str
    pixel_offset: int | None  # file offset of the native PixelData value; None if encapsulated
    orientation: tuple[float, ...] | None
    position: tuple[float, float, float] | None
    pixel_spacing: tuple[float, float] | None
    spacing_source: str | None
    slice_thickness: float | None
    spacing_between_slices: float | None
    slope: float
    intercept: float
    rescale_type: str | None
    gantry_tilt: float | None
    frame_positions: list[tuple[float, float, float]] | None = None
    frame_slopes: list[float] | None = None
    frame_intercepts: list[float] | None = None

    @property
    def frame_nbytes(self) -> int:
        """Bytes of one uncompressed frame (all samples)."""
        return self.rows * self.cols * self.samples * self.bits_allocated // 8


@dataclass
class SeriesInfo:
    """One series found by `index_dicom_files`: its files and their parsed headers.

    Pass it to `open_dicom` to open the series without reading the headers again.
    """

    uid: str
    headers: list[DicomHeader]

    @property
    def files(self) -> list[str]:
        return [h.path for h in self.headers]

    @property
    def n_files(self) -> int:
        return len(self.headers)

    @property
    def modality(self) -> str:
        return self.headers[0].modality

    @property
    def description(self) -> str:
        return self.headers[0].description

    @property
    def n_slices(self) -> int:
        """Slices in the volume: files for single-frame series, frames for multi-frame."""
        return sum(h.n_frames for h in self.headers)

    def summary(self) -> str:
        """One line for error messages: uid, modality, description, slices."""
        uid = self.uid or "(no SeriesInstanceUID)"
        desc = f" {self.description!r}" if self.description else ""
        return (f"{uid} [{self.modality or '?'}]{desc}: {self.n_slices} slices in "
                f"{self.n_files} files")


# ---------------------------------------------------------------------------------
# header reading
# ---------------------------------------------------------------------------------
def _floats(value, n: int | None = None) -> tuple[float, ...] | None:
    """A multi-valued DS/FD element as floats (None when absent, malformed or not `n` long)."""
    if value is None:
        return None
    items = list(value) if hasattr(value, "__iter__") and not isinstance(value, (str, bytes)) else [value]
    try:
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return None
    if n is not None and len(out) != n:
        return None
    return out


def _float(value) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _int(value) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _functional_item(ds, frame: int | None, sequence: str):
    """First item of a functional-group macro for `frame`: per-frame first, then shared."""
    if frame is not None:
        per_frame = ds.get("PerFrameFunctionalGroupsSequence")
        if per_frame is not None and frame < len(per_frame):
            items = per_frame[frame].get(sequence)
            if items:
                return items[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        items = shared[0].get(sequence)
        if items:
            return items[0]
    return None


def _pixel_element(fh, offset: int, little: bool, implicit: bool) -> tuple[int, int, int] | None:
    """Parse the element header at `offset`: (tag, value offset, value length) or None at EOF.

    Written by hand because pydicom exposes no API for where an element's value starts;
    knowing it lets slice reads seek straight to the pixel bytes.
    """
    fh.seek(offset)
    head = fh.read(12)
    if len(head) < 8:
        return None
    order = "<" if little else ">"
    group, elem = struct.unpack(order + "HH", head[:4])
    tag = (group << 16) | elem
    if implicit:
        (length,) = struct.unpack(order + "I", head[4:8])
        return tag, offset + 8, length
    vr = head[4:6]
    if vr in _LONG_VRS:
        if len(head) < 12:
            return None
        (length,) = struct.unpack(order + "I", head[8:12])
        return tag, offset + 12, length
    (length,) = struct.unpack(order + "H", head[6:8])
    return tag, offset + 8, length


def _check_fragments(fh, path: str, value_offset: int, file_size: int, little: bool) -> None:
    """Walk the encapsulated fragment items (headers only) and fail if the file ends early."""
    order = "<" if little else ">"
    pos = value_offset
    while True:
        if pos + 8 > file_size:
            raise ImageReadError(path, f"truncated: compressed pixel data ends at byte {file_size} "
                                 "before its sequence delimiter")
        fh.seek(pos)
        group, elem, length = struct.unpack(order + "HHI", fh.read(8))
        tag = (group << 16) | elem
        if tag == 0xFFFEE0DD:  # sequence delimiter: all fragments present
            return
        if tag != 0xFFFEE000:
            raise ImageReadError(path, f"corrupt compressed pixel data: expected an item tag at byte "
                                 f"{pos}, found ({group:04X},{elem:04X})")
        pos += 8 + length
        if pos > file_size:
            raise ImageReadError(path, f"truncated: a compressed fragment needs bytes up to {pos}, "
                                 f"the file has {file_size}")


def read_header(path) -> DicomHeader:
    """Read one file's header (no pixels) into a `DicomHeader`.

    Also checks, from the header alone, that the pixel data is complete: for native
    encodings the file must hold `rows*cols*samples*frames*bits/8` bytes after the
    pixel-data offset; for compressed ones every fragment must fit in the file.

    Raises:
        DicomFileError: unreadable header, no pixel data (reason starts with
            `NOT_AN_IMAGE`), or truncated pixel data; its `series_uid` is the series
            the header names, when it could be read.
    """
    import pydicom

    path = str(path)
    caught: list = []
    series_uid = ""
    try:
        file_size = os.path.getsize(path)
        with open(path, "rb") as fh, warnings.catch_warnings(record=True) as caught:
            # pydicom reports malformed values and an end of file inside the header as
            # warnings: keep them out of scan output, and turn the end of file into an error
            warnings.simplefilter("always")
            ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True)
            series_uid = str(ds.get("SeriesInstanceUID", "") or "")
            header = _parse_opened(ds, fh, path, file_size)
        _raise_if_eof(path, caught)
    except ImageReadError as exc:
        _raise_if_eof(path, caught, series_uid)
        raise DicomFileError(path, exc.reason, series_uid) from exc
    except Exception as exc:  # pydicom raises many types for corrupt input; name the file
        _raise_if_eof(path, caught, series_uid)
        raise DicomFileError(path, f"not a readable DICOM file ({type(exc).__name__}: {exc})",
                             series_uid) from exc
    return header


def _raise_if_eof(path: str, caught, series_uid: str = "") -> None:
    eof = [str(w.message) for w in caught if "end of file" in str(w.message).lower()]
    if eof:
        raise DicomFileError(path, f"truncated header ({eof[0]})", series_uid)


def _parse_opened(ds, fh, path: str, file_size: int) -> DicomHeader:
    """Classify a header-only dataset, locate and size-check its pixel data (see read_header)."""
    from pydicom.uid import UID

    stop = fh.tell()
    meta = getattr(ds, "file_meta", None)
    ts = UID(str(meta.get("TransferSyntaxUID", "")) if meta is not None else "")
    if not ts:
        # no file meta (raw dataset): fall back to what pydicom detected
        implicit, little = ds.original_encoding
        implicit = True if implicit is None else implicit
        little = True if little is None else little
        ts = UID("1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1")
    else:
        implicit, little = ts.is_implicit_VR, ts.is_little_endian
    element = None if ts.is_deflated else _pixel_element(fh, stop, little, implicit)
    if (meta is None or "TransferSyntaxUID" not in meta) and not (
            "SOPClassUID" in ds or "Rows" in ds):
        # force=True parses any bytes; without file meta and core elements it is not DICOM
        raise ImageReadError(path, "not a readable DICOM file (no transfer syntax in a file "
                             "meta header and no SOPClassUID/Rows: not DICOM, or cut off "
                             "inside its header)")
    has_pixels = ts.is_deflated or (element is not None and element[0] == PIXEL_DATA_TAG)
    if not has_pixels or "Rows" not in ds or "Columns" not in ds:
        sop_classes = _sop_classes(ds)
        name = next((uid.name for uid in sop_classes if uid.name != str(uid)),
                    "unknown SOP class")
        if _expects_pixels(sop_classes):
            # an image object without its pixel data was cut off (pydicom stops quietly
            # at the end of a file when an element's value is short)
            raise ImageReadError(path, f"truncated or corrupt: a {name} file "
                                 f"without {'Rows/Columns' if has_pixels else 'Pixel Data'} "
                                 f"(header parsed up to byte {stop} of {file_size})")
        raise ImageReadError(path, f"{NOT_AN_IMAGE}: {name} "
                             "without (7FE0,0010) Pixel Data (a DICOMDIR, report, "
                             "presentation state or other non-image object)")
    header = _header_from_dataset(ds, path, ts)
    if element is not None:
        _, value_offset, length = element
        if length == 0xFFFFFFFF:
            _check_fragments(fh, path, value_offset, file_size, little)
        else:
            expected = header.frame_nbytes * header.n_frames
            if header.bits_allocated == 1:
                expected = (header.rows * header.cols * header.n_frames + 7) // 8
            if value_offset + expected > file_size:
                raise ImageReadError(path, f"truncated: pixel data needs {expected} bytes at "
                                     f"offset {value_offset}, the file has "
                                     f"{file_size - value_offset}")
            if length < expected:
                raise ImageReadError(path, f"pixel data element holds {length} bytes, "
                                     f"{header.rows}x{header.cols}x{header.samples} × "
                                     f"{header.n_frames} frames at {header.bits_allocated} "
                                     f"bits needs {expected}")
            if header.bits_allocated in (8, 16, 32, 64) and not ts.is_encapsulated:
                header.pixel_offset = value_offset
    return header


def _sop_classes(ds) -> list:
    """SOP Class UIDs of a header-only dataset: the dataset's and the file meta's (either may be absent)."""
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    values = [ds.get("SOPClassUID"), meta.get("MediaStorageSOPClassUID") if meta is not None else None]
    return [UID(str(v)) for v in values if v]


def _expects_pixels(sop_classes) -> bool:
    """True when any SOP class always carries Pixel Data (image storage, segmentation)."""
    return any("Image Storage" in uid.name or uid.name.startswith("Segmentation") for uid in sop_classes)


def _header_from_dataset(ds, path: str, ts) -> DicomHeader:
    """Copy the facts we need out of a header-only dataset."""
    n_frames = _int(ds.get("NumberOfFrames")) or 1
    multi_frame = "NumberOfFrames" in ds and (n_frames > 1 or "PerFrameFunctionalGroupsSequence" in ds)

    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    position = _floats(ds.get("ImagePositionPatient"), 3)
    spacing = _floats(ds.get("PixelSpacing"), 2)
    spacing_source = "PixelSpacing" if spacing else None
    thickness = _float(ds.get("SliceThickness"))
    slope = _float(ds.get("RescaleSlope"))
    intercept = _float(ds.get("RescaleIntercept"))
    rescale_type = ds.get("RescaleType")

    frame_positions = frame_slopes = frame_intercepts = None
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        plane = _functional_item(ds, 0, "PlaneOrientationSequence")
        if plane is not None:
            orientation = _floats(plane.get("ImageOrientationPatient"), 6) or orientation
        measures = _functional_item(ds, 0, "PixelMeasuresSequence")
        if measures is not None:
            fg_spacing = _floats(measures.get("PixelSpacing"), 2)
            if fg_spacing:
                spacing, spacing_source = fg_spacing, "PixelMeasuresSequence"
            thickness = _float(measures.get("SliceThickness")) or thickness
        positions, slopes, intercepts = [], [], []
        for i in range(n_frames):
            pos_item = _functional_item(ds, i, "PlanePositionSequence")
            positions.append(_floats(pos_item.get("ImagePositionPatient"), 3) if pos_item else None)
            orient_item = _functional_item(ds, i, "PlaneOrientationSequence")
            if orient_item is not None and orientation is not None:
                frame_orient = _floats(orient_item.get("ImageOrientationPatient"), 6)
                if frame_orient and max(abs(a - b) for a, b in zip(frame_orient, orientation)) > _ORIENTATION_TOL:
                    raise ImageReadError(path, f"frame {i} has orientation {frame_orient}, frame 0 "
                                         f"{orientation}: several stacks in one file are not read")
            pvt = _functional_item(ds, i, "PixelValueTransformationSequence")
            slopes.append(_float(pvt.get("RescaleSlope")) if pvt else None)
            intercepts.append(_float(pvt.get("RescaleIntercept")) if pvt else None)
            if pvt is not None and rescale_type is None:
                rescale_type = pvt.get("RescaleType")
        if all(p is not None for p in positions):
            frame_positions = positions
        if any(s is not None for s in slopes):
            frame_slopes = [s if s is not None else (slope or 1.0) for s in slopes]
        if any(b is not None for b in intercepts):
            frame_intercepts = [b if b is not None else (intercept or 0.0) for b in intercepts]
    if spacing is None:
        imager = _floats(ds.get("ImagerPixelSpacing"), 2)
        if imager:
            spacing, spacing_source = imager, "ImagerPixelSpacing"
    if spacing is None:
        spacing, spacing_source = _ultrasound_spacing(ds)

    return DicomHeader(
        path=path,
        series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        sop_uid=str(ds.get("SOPInstanceUID", "") or ""),
        modality=str(ds.get("Modality", "") or ""),
        description=str(ds.get("SeriesDescription", "") or ""),
        series_number=_int(ds.get("SeriesNumber")),
        instance_number=_int(ds.get("InstanceNumber")),
        rows=int(ds.Rows),
        cols=int(ds.Columns),
        samples=_int(ds.get("SamplesPerPixel")) or 1,
        photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2") or "MONOCHROME2").strip(),
        bits_allocated=_int(ds.get("BitsAllocated")) or 16,
        bits_stored=_int(ds.get("BitsStored")) or _int(ds.get("BitsAllocated")) or 16,
        pixel_representation=_int(ds.get("PixelRepresentation")) or 0,
        planar_configuration=_int(ds.get("PlanarConfiguration")) or 0,
        n_frames=n_frames,
        multi_frame=bool(multi_frame),
        transfer_syntax=str(ts),
        pixel_offset=None,
        orientation=orientation,
        position=position,
        pixel_spacing=spacing,
        spacing_source=spacing_source,
        slice_thickness=thickness,
        spacing_between_slices=_float(ds.get("SpacingBetweenSlices")),
        slope=1.0 if slope is None else slope,
        intercept=0.0 if intercept is None else intercept,
        rescale_type=str(rescale_type) if rescale_type else None,
        gantry_tilt=_float(ds.get("GantryDetectorTilt")),
        frame_positions=frame_positions,
        frame_slopes=frame_slopes,
        frame_intercepts=frame_intercepts,
    )


def _ultrasound_spacing(ds) -> tuple[tuple[float, float] | None, str | None]:
    """(y, x) mm from the first ultrasound region with physical deltas in cm (units code 3)."""
    regions = ds.get("SequenceOfUltrasoundRegions")
    if not regions:
        return None, None
    region = regions[0]
    if region.get("PhysicalUnitsXDirection") == 3 and region.get("PhysicalUnitsYDirection") == 3:
        dx, dy = _float(region.get("PhysicalDeltaX")), _float(region.get("PhysicalDeltaY"))
        if dx and dy:
            return (abs(dy) * 10.0, abs(dx) * 10.0), "SequenceOfUltrasoundRegions"
    return None, None


# ---------------------------------------------------------------------------------
# grouping
# ---------------------------------------------------------------------------------
def index_dicom_files(paths: Iterable) -> tuple[list[SeriesInfo], list[tuple[str, str]]]:
    """Group DICOM files into series by SeriesInstanceUID, reading headers only.

    Args:
        paths: DICOM files (any order).

    Returns:
        `(series, rejected)`: one `SeriesInfo` per SeriesInstanceUID, in order of first
        appearance, and `(path, reason)` for files whose header could not be used
        (unparseable, truncated, or with no pixels: reason starts with `NOT_AN_IMAGE`).
        Never raises for a bad file.
    """
    series, errors = index_with_errors(paths)
    return series, [(e.path, e.reason) for e in errors]


def index_with_errors(paths: Iterable) -> tuple[list[SeriesInfo], list[DicomFileError]]:
    """`index_dicom_files`, keeping each rejected file's error (with its `series_uid`)."""
    groups: dict[str, list[DicomHeader]] = {}
    errors: list[DicomFileError] = []
    for p in paths:
        try:
            header = read_header(p)
        except DicomFileError as exc:
            errors.append(exc)
            continue
        groups.setdefault(header.series_uid, []).append(header)
    return [SeriesInfo(uid, headers) for uid, headers in groups.items()], errors
