"""Small generator of synthetic DICOM files (pydicom) for the reader's edge cases.

Every writer returns what a correct reader must give back (the volume in HU, ordered by
position along the slice normal), so tests compare values, not just shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)



def _new_dataset(sop_class, transfer_syntax):
    """An empty dataset with its file meta: SOP class and transfer syntax set, UIDs left to the caller."""
    from pydicom.dataset import Dataset, FileMetaDataset

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    return ds

def oblique_orientation(angle_deg: float = 30.0) -> tuple[float, ...]:
    """Row/column direction cosines of an axial plane rotated by `angle_deg` about x, then z."""
    a, b = math.radians(angle_deg), math.radians(angle_deg / 2)
    rot_x = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    rot_z = np.array([[math.cos(b), -math.sin(b), 0], [math.sin(b), math.cos(b), 0], [0, 0, 1]])
    rot = rot_z @ rot_x
    row, col = rot @ np.array([1.0, 0, 0]), rot @ np.array([0, 1.0, 0])
    return tuple(float(v) for v in np.concatenate([row, col]))


def slice_normal(orientation: Sequence[float]) -> np.ndarray:
    return np.cross(np.asarray(orientation[:3]), np.asarray(orientation[3:]))


def write_slice(path: Path, stored: np.ndarray, *, series_uid: str, position=(0.0, 0.0, 0.0),
                orientation=AXIAL, pixel_spacing=(0.5, 0.75), instance_number: int = 1,
                slope: float = 1.0, intercept: float = -1024.0, modality: str = "CT",
                description: str = "", study_uid: str | None = None, sop_uid: str | None = None,
                bits_stored: int | None = None, raw_pixel_bytes: bytes | None = None,
                compress_rle: bool = False, implicit_vr: bool = False) -> Path:
    """Write one single-frame slice; `stored` is (rows, cols) int16/uint16 stored values.

    `raw_pixel_bytes` replaces the pixel bytes verbatim (e.g. values with garbage in the
    unused high bits); `compress_rle` encodes with RLE Lossless (pydicom's own encoder);
    `implicit_vr` writes Implicit VR Little Endian instead of Explicit.
    """
    from pydicom.uid import (CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                             RLELossless, generate_uid)

    ds = _new_dataset(CTImageStorage, ExplicitVRLittleEndian)
    meta = ds.file_meta
    ds.Modality = modality
    ds.SeriesDescription = description
    ds.StudyInstanceUID = study_uid or "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = series_uid
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [round(float(v), 6) for v in position]
    ds.ImageOrientationPatient = [round(float(v), 8) for v in orientation]
    ds.PixelSpacing = [float(v) for v in pixel_spacing]
    ds.SliceThickness = 1.0
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.set_pixel_data(np.ascontiguousarray(stored), "MONOCHROME2", bits_stored or stored.dtype.itemsize * 8)
    ds.SOPInstanceUID = sop_uid or generate_uid()
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if raw_pixel_bytes is not None:
        ds.PixelData = raw_pixel_bytes
    if compress_rle:
        ds.compress(RLELossless, generate_instance_uid=False)
    if implicit_vr:
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


@dataclass
class GeneratedSeries:
    """A written series: its uid, files (in position order), and the expected volume."""

    uid: str
    files: list[Path]
    hu: np.ndarray            # (Z, Y, X) float32, what read() must return, z along +normal
    positions: np.ndarray     # (Z, 3) ImagePositionPatient of each slice, z order
    orientation: tuple[float, ...]
    spacing: tuple[float, float, float]
    meta: dict = field(default_factory=dict)


def write_series(folder: Path, *, n: int = 6, rows: int = 12, cols: int = 10, spacing=(2.5, 0.5, 0.75),
                 origin=(-20.0, -30.0, 40.0), orientation=AXIAL, series_uid: str | None = None,
                 skip: Sequence[int] = (), shuffle: bool = True, seed: int = 0, modality: str = "CT",
                 description: str = "", per_slice_rescale: bool = False, name_prefix: str = "",
                 compress_rle: bool = False) -> GeneratedSeries:
    """Write a series of `n` slices (minus `skip`) along the normal of `orientation`.

    With `shuffle`, file names and InstanceNumbers are assigned in a random order that
    has nothing to do with position; with `per_slice_rescale` each slice gets its own
    RescaleSlope/Intercept (the HU stay what `hu` says).
    """
    from pydicom.uid import generate_uid

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    uid = series_uid or generate_uid()
    normal = slice_normal(orientation)
    kept = [k for k in range(n) if k not in set(skip)]
    labels = rng.permutation(len(kept)) if shuffle else np.arange(len(kept))
    files, hus, positions = [], [], []
    for j, k in enumerate(kept):
        stored = rng.integers(-200, 1800, size=(rows, cols)).astype(np.int16)
        stored[0, 0] = 100 * k  # a marker that identifies the slice
        slope, intercept = ((1.0 + 0.5 * (k % 2), -1024.0 + 10 * k) if per_slice_rescale
                            else (1.0, -1024.0))
        position = np.asarray(origin) + k * spacing[0] * normal
        path = folder / f"{name_prefix}img_{int(labels[j]):04d}.dcm"
        write_slice(path, stored, series_uid=uid, position=position, orientation=orientation,
                    pixel_spacing=spacing[1:], instance_number=int(labels[j]) + 1, slope=slope,
                    intercept=intercept, modality=modality, description=description,
                    compress_rle=compress_rle)
        files.append(path)
        hus.append(stored.astype(np.float32) * np.float32(slope) + np.float32(intercept))
        positions.append(position)
    return GeneratedSeries(uid, files, np.stack(hus), np.array(positions), tuple(orientation),
                           tuple(spacing))


def truncate(path: Path, keep_bytes: int) -> Path:
    """Cut a file to its first `keep_bytes` bytes (a copy interrupted mid-transfer)."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[:keep_bytes])
    return Path(path)


def write_encapsulated(path: Path, transfer_syntax: str, *, rows: int = 8, cols: int = 8) -> Path:
    """A file whose pixel data is one opaque fragment under `transfer_syntax` (for decoder errors)."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import CTImageStorage, generate_uid

    ds = _new_dataset(CTImageStorage, transfer_syntax)
    meta = ds.file_meta
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = encapsulate([b"\x00" * 16])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


def write_colour(path: Path, stored: np.ndarray, photometric: str, *, palette: np.ndarray | None = None) -> Path:
    """A single-frame secondary-capture colour file.

    `stored` is (rows, cols, 3) uint8 for "RGB"/"YBR_FULL", or (rows, cols) uint8 indices for
    "PALETTE COLOR" with `palette` a (256, 3) uint16 table (red, green, blue).
    """
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    ds = _new_dataset(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    meta = ds.file_meta
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "OT"
    ds.set_pixel_data(np.ascontiguousarray(stored), photometric, 8)
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if palette is not None:
        for channel, colour in enumerate(("Red", "Green", "Blue")):
            setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [len(palette), 0, 16])
            setattr(ds, f"{colour}PaletteColorLookupTableData",
                    palette[:, channel].astype("<u2").tobytes())
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


def write_multiframe(path: Path, stored: np.ndarray, *, compress_rle: bool = False,
                     spacing_between_slices: float = 1.5) -> Path:
    """A multi-frame MR file without functional groups; `stored` is (frames, rows, cols) int16."""
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, RLELossless, generate_uid

    ds = _new_dataset(MRImageStorage, ExplicitVRLittleEndian)
    meta = ds.file_meta
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "MR"
    ds.SpacingBetweenSlices = spacing_between_slices
    ds.PixelSpacing = [0.8, 0.9]
    ds.set_pixel_data(np.ascontiguousarray(stored), "MONOCHROME2", 16)
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if compress_rle:
        ds.compress(RLELossless, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


def rewrite_big_endian(src: Path, dst: Path) -> Path:
    """Re-encode a native 16-bit single-frame file as (retired) Explicit VR Big Endian."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.uid import ExplicitVRBigEndian

    original = pydicom.dcmread(src)
    pixels = original.pixel_array
    ds = Dataset()
    ds.update(original)
    ds.file_meta = original.file_meta
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder(">")).tobytes()
    pydicom.dcmwrite(dst, ds, enforce_file_format=True)
    return Path(dst)
