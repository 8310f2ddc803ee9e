"""The embedded default archive: generated, in real formats, with a documented hidden structure.

No data may ship with the package and nothing may be downloaded, so `domainssl demo` (and
`make demo`) runs on an archive written here. It is GENERATED, not real imagery; every
output says so.

Layout written by `make_demo_archive(root)`:

    root/
      archive/                     the unlabeled archive (what `domainssl scan` indexes)
        tiles/tile_00000.tif ...   4-band (B02 B03 B04 B08) uint16 GeoTIFFs, 64x64 px, 10 m,
                                   EPSG:32629, reflectance x 10000, nodata 0
        medical/ct_head/*.dcm      a small CT series (DICOM, HU via RescaleIntercept)
        medical/brain_t1.nii.gz    a small T1-like volume (NIfTI)
        microscopy/cells.ome.zarr  a 2-channel OME-NGFF 0.4 image
        broken/truncated.tif       a truncated file: the scan must reject it, not crash
      labeled/
        tiles/...                  labeled tiles of the same kind
        labels.csv                 path,label,split  (split: train / test)

Hidden class structure of the tiles (the labels of `labeled/`): four land-cover-like
classes told apart by *spatial structure*, not by colour: 0 "fields" (parallel stripes at a
random angle), 1 "forest" (blobby canopy), 2 "urban" (a grid of rectangular blocks),
3 "water" (smooth surface with faint ripples). Each tile also gets nuisance variation that
a good encoder should ignore: a random per-band gain (so spectra overlap between classes),
a brightness gradient, sensor noise, a random 90-degree rotation / flip, and, in a few
tiles, a nodata border.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

CLASSES = ["fields", "forest", "urban", "water"]
BANDS = ["B02", "B03", "B04", "B08"]
TILE = 64
# Mean reflectance per class and band (x10000): deliberately close, the classes differ in
# structure; the per-tile gain below blurs them further.
_SPECTRA = np.array([
    [900, 1100, 1000, 2600],
    [700, 900, 700, 2800],
    [1300, 1400, 1500, 2000],
    [800, 900, 800, 1900],
], dtype=np.float64)


def _structure(cls: int, rng: np.random.Generator, n: int = TILE) -> np.ndarray:
    """A (n, n) pattern in [0, 1] carrying the class."""
    from scipy import ndimage

    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    if cls == 0:  # fields: stripes
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(5, 10)
        phase = rng.uniform(0, 2 * np.pi)
        u = xx * np.cos(angle) + yy * np.sin(angle)
        return 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * u / period + phase)) * 0.8
    if cls == 1:  # forest: blobs
        noise = ndimage.gaussian_filter(rng.standard_normal((n, n)), sigma=rng.uniform(1.5, 2.5))
        return (noise > np.quantile(noise, rng.uniform(0.4, 0.6))).astype(np.float64) * 0.8 + 0.1
    if cls == 2:  # urban: blocks on a grid with streets
        pitch = int(rng.integers(10, 16))
        street = int(rng.integers(2, 4))
        off_y, off_x = rng.integers(0, pitch, size=2)
        block = (((yy + off_y) % pitch) >= street) & (((xx + off_x) % pitch) >= street)
        heights = rng.uniform(0.4, 1.0, size=(n // pitch + 2, n // pitch + 2))
        h = heights[((yy + off_y) // pitch).astype(int), ((xx + off_x) // pitch).astype(int)]
        return np.where(block, h, 0.1)
    # water: smooth with faint ripples
    base = ndimage.gaussian_filter(rng.standard_normal((n, n)), sigma=8)
    base = (base - base.min()) / (np.ptp(base) + 1e-9)
    ripple = 0.05 * np.sin(2 * np.pi * yy / rng.uniform(3, 5))
    return 0.3 + 0.3 * base + ripple


def make_tile(cls: int, rng: np.random.Generator) -> np.ndarray:
    """One generated tile of class `cls`: uint16 array (4, 64, 64), reflectance x 10000, 0 = nodata."""
    s = _structure(cls, rng)
    gain = rng.uniform(0.7, 1.3, size=(len(BANDS), 1, 1))  # nuisance: spectra overlap
    spectrum = _SPECTRA[cls][:, None, None] * gain
    yy, xx = np.mgrid[0:TILE, 0:TILE] / TILE
    gradient = 1 + rng.uniform(-0.25, 0.25) * yy + rng.uniform(-0.25, 0.25) * xx
    img = spectrum * (0.4 + 1.2 * s[None]) * gradient[None]
    img += rng.normal(0, 60, size=img.shape)
    img = np.rot90(img, k=int(rng.integers(4)), axes=(1, 2))
    if rng.random() < 0.5:
        img = img[:, :, ::-1]
    out = np.clip(img, 1, 65535).astype(np.uint16)
    if rng.random() < 0.1:  # a nodata border, as at a scene edge
        out[:, :, : int(rng.integers(4, 16))] = 0
    return out


def write_geotiff(path: Path, data: np.ndarray, x0: float = 500000.0, y0: float = 3300000.0,
                  pixel_m: float = 10.0) -> None:
    """Write a (C, Y, X) uint16 array as a tiled GeoTIFF with band descriptions and nodata 0."""
    import rasterio
    from rasterio.transform import from_origin

    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                   dtype=data.dtype.name, crs="EPSG:32629", nodata=0,
                   transform=from_origin(x0, y0, pixel_m, pixel_m), compress="deflate",
                   tiled=data.shape[1] >= 256 and data.shape[2] >= 256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(BANDS[: data.shape[0]], start=1):
            dst.set_band_description(i, name)


def write_dicom_series(folder: Path, volume_hu: np.ndarray, spacing=(2.5, 0.8, 0.8), seed: int = 0) -> None:
    """Write an int16 CT volume (Z, Y, X) in HU as one DICOM file per slice (intercept -1024).

    File names are shuffled against slice position on purpose: readers must sort by position.
    """
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    order = rng.permutation(volume_hu.shape[0])
    for k, z in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"im{k:03d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.SeriesDescription, ds.PatientID = "CT", "generated demo head", "DEMO"
        ds.InstanceNumber = int(k + 1)  # deliberately unrelated to position
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, float(z * spacing[0])]
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.SliceThickness = spacing[0]
        ds.Rows, ds.Columns = volume_hu.shape[1:]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = (volume_hu[z] + 1024).astype(np.int16).tobytes()
        pydicom.dcmwrite(folder / f"im{k:03d}.dcm", ds, enforce_file_format=True)


def _phantom(shape=(24, 48, 48), seed: int = 0) -> np.ndarray:
    """A head-like CT phantom in HU: air, skull (~1000), brain (~35) with a few lesions."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    r = np.sqrt((z / 0.9) ** 2 + y ** 2 + x ** 2)
    vol = np.full(shape, -1000.0)
    vol[r < 0.85] = 1000.0
    vol[r < 0.75] = 35.0
    for _ in range(3):
        c = rng.uniform(-0.4, 0.4, size=3)
        vol[((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) < 0.01] = 70.0
    return (vol + rng.normal(0, 5, size=shape)).astype(np.int16)


def _write_extras(archive: Path, seed: int) -> None:
    """The non-tile files: a DICOM series, a NIfTI volume, an OME-Zarr and a broken file."""
    import nibabel as nib
    import zarr

    write_dicom_series(archive / "medical" / "ct_head", _phantom(seed=seed), seed=seed)
    t1 = (np.clip(_phantom(seed=seed + 1).astype(np.float32) + 200, 0, 1200) / 4).astype(np.uint16)
    nib.save(nib.Nifti1Image(t1.transpose(2, 1, 0), np.diag([1.0, 1.0, 1.0, 1.0])),
             str(archive / "medical" / "brain_t1.nii.gz"))

    rng = np.random.default_rng(seed)
    cells = (rng.poisson(100, size=(2, 8, 64, 64))).astype(np.uint16)
    group = zarr.open_group(str(archive / "microscopy" / "cells.ome.zarr"), mode="w", zarr_format=2)
    group.create_array("0", data=cells, chunks=(1, 8, 32, 32))
    group.attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": "c", "type": "channel"}] + [
            {"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 0.5, 0.2, 0.2]}]}],
    }]
    group.attrs["omero"] = {"channels": [{"label": "DAPI"}, {"label": "GFP"}]}

    broken = archive / "broken"
    broken.mkdir(parents=True, exist_ok=True)
    good = archive / "tiles" / "tile_00000.tif"
    (broken / "truncated.tif").write_bytes(good.read_bytes()[:300])


def make_demo_archive(root, seed: int = 0, n_unlabeled: int = 600, n_train_per_class: int = 50,
                      n_test_per_class: int = 50, extras: bool = True) -> dict:
    """Generate the default demo archive under `root` (see the module docstring for the layout).

    Args:
        root: output folder (created).
        seed: everything is deterministic under it.
        n_unlabeled: number of unlabeled tiles in `archive/tiles` (classes hidden, balanced).
        n_train_per_class / n_test_per_class: labeled tiles per class and split.
        extras: also write the DICOM series, NIfTI, OME-Zarr and broken file that show the scan.

    Returns:
        dict with `root` (the unlabeled archive folder), `tiles` (its tile folder, what the
        demo pretrains on), `labels_csv` (path,label,split with paths relative to the CSV),
        `classes`, `channel_names`, `generated` (True).
    """
    root = Path(root)
    archive, labeled = root / "archive", root / "labeled"
    (archive / "tiles").mkdir(parents=True, exist_ok=True)
    (labeled / "tiles").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n_unlabeled):
        cls = i % len(CLASSES)
        write_geotiff(archive / "tiles" / f"tile_{i:05d}.tif", make_tile(cls, rng),
                      x0=500000.0 + (i % 50) * TILE * 10, y0=3300000.0 - (i // 50) * TILE * 10)
    rows = []
    for split, n in (("train", n_train_per_class), ("test", n_test_per_class)):
        for cls, name in enumerate(CLASSES):
            for j in range(n):
                rel = f"tiles/{split}_{name}_{j:03d}.tif"
                write_geotiff(labeled / rel, make_tile(cls, rng))
                rows.append((rel, name, split))
    labels_csv = labeled / "labels.csv"
    with open(labels_csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split"])
        w.writerows(rows)
    if extras:
        _write_extras(archive, seed)
    (root / "README.txt").write_text(
        "GENERATED demo archive (domainssl.data.synthetic), not real imagery.\n"
        f"Hidden classes of the tiles: {', '.join(CLASSES)} (see the module docstring).\n")
    return {"root": str(archive), "tiles": str(archive / "tiles"), "labels_csv": str(labels_csv),
            "classes": list(CLASSES), "channel_names": list(BANDS), "generated": True}


if __name__ == "__main__":  # python -m domainssl.data.synthetic OUT
    import sys

    info = make_demo_archive(sys.argv[1] if len(sys.argv) > 1 else "demo_archive")
    print(info)
