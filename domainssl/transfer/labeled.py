"""Labeled images for few-label transfer: a CSV, a folder per class, or in-memory arrays.

A CSV has a header with at least `path,label`; optional columns:
    split          train / test (val rows are kept and ignored by the protocol)
    z0,z1,y0,y1,x0,x1   a region (pixel indices, stop exclusive); empty cells mean the whole axis
Paths are relative to the CSV's folder (absolute paths work too) and may be any file
`domainssl.open_image` reads (DICOM series folders, NIfTI, GeoTIFF, OME-TIFF/Zarr, PNG/JPEG).

A folder holds one sub-folder per class (`ROOT/<class>/*`) or, with a fixed split,
`ROOT/train/<class>/*` and `ROOT/test/<class>/*`.

Without a split, `LabeledSet.with_split` makes a seeded stratified one.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

REGION_COLUMNS = ("z0", "z1", "y0", "y1", "x0", "x1")
SPLITS = ("train", "val", "test")


class LabeledDataError(ValueError):
    """Labeled data that cannot be used (bad CSV, unreadable file, inconsistent channels)."""


@dataclass
class LabeledSet:
    """Labeled images, read on demand.

    Attributes:
        name: a short name for reports.
        num_items: number of images.
        get_image: `i -> float32 array (C, Y, X) or (C, Z, Y, X)` in the data's own units.
        labels: int array (N,), indices into `class_names`.
        class_names: class name per label index.
        split: str array (N,) of "train" / "val" / "test", or None when no split is fixed yet.
        channel_names, spacing, units: as `open_image` gives them (shared by all images).
        spatial_dims: 2 or 3.
        fingerprint: a string that changes when the images change (for feature caches).
    """

    name: str
    num_items: int
    get_image: Callable[[int], np.ndarray]
    labels: np.ndarray
    class_names: list[str]
    channel_names: list[str]
    spatial_dims: int
    spacing: list[float] | None = None
    units: list[str] | None = None
    split: np.ndarray | None = None
    fingerprint: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.num_items

    def indices(self, split: str) -> np.ndarray:
        """Item indices of one split ("train", "val" or "test")."""
        if self.split is None:
            raise LabeledDataError(f"{self.name}: no split; call with_split(test_fraction, seed) first")
        return np.flatnonzero(self.split == split)

    def with_split(self, test_fraction: float = 0.3, seed: int = 0) -> "LabeledSet":
        """This set with a fixed split; a seeded stratified train/test split when none is given."""
        if self.split is not None:
            return self
        return replace(self, split=stratified_split(self.labels, test_fraction, seed))

    def summary(self) -> dict[str, Any]:
        """JSON-friendly counts per split and class."""
        out: dict[str, Any] = {"name": self.name, "items": int(self.num_items), "classes": list(self.class_names),
                               "channel_names": list(self.channel_names), "spatial_dims": self.spatial_dims}
        if self.split is not None:
            for s in SPLITS:
                idx = self.split == s
                if idx.any():
                    out[s] = {c: int(np.sum(self.labels[idx] == i)) for i, c in enumerate(self.class_names)}
        out.update(self.info)
        return out


def stratified_split(labels: Sequence[int], test_fraction: float = 0.3, seed: int = 0) -> np.ndarray:
    """A seeded stratified split: str array of "train"/"test" with `test_fraction` of each class in test."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    idx = np.arange(len(labels))
    _, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=labels)
    split = np.full(len(labels), "train", dtype=object)
    split[test] = "test"
    return split.astype(str)


def from_arrays(images: np.ndarray, labels: Sequence, *, class_names: Sequence[str] | None = None,
                split: Sequence[str] | None = None, channel_names: Sequence[str] | None = None,
                spacing=None, units=None, name: str = "arrays", info: dict | None = None) -> LabeledSet:
    """A labeled set from an array `(N, C, *S)` (or `(N, *S)` for one channel) and labels."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(images):
        raise LabeledDataError(f"{name}: {len(images)} images but labels of shape {labels.shape}")
    if class_names is None:
        values = sorted(set(labels.tolist()))
        class_names = [str(v) for v in values]
        labels = np.array([values.index(v) for v in labels.tolist()])
    dims = images.ndim - 2
    if dims not in (2, 3):
        raise LabeledDataError(f"{name}: expected images (N, C, Y, X) or (N, C, Z, Y, X), found {images.shape}")
    chans = channel_names or [f"c{i}" for i in range(images.shape[1])]
    fingerprint = f"{name}:{images.shape}:{images.dtype}:{hashlib.sha1(np.ascontiguousarray(images)).hexdigest()[:16]}"
    return LabeledSet(name=name, num_items=len(images), get_image=lambda i: images[i].astype(np.float32),
                      labels=labels.astype(int), class_names=list(map(str, class_names)),
                      channel_names=list(chans), spatial_dims=dims, spacing=spacing, units=units,
                      split=None if split is None else np.asarray(split).astype(str),
                      fingerprint=fingerprint, info=dict(info or {}))


def _region(row: dict, ndim: int, where: str) -> tuple[slice, ...]:
    names = REGION_COLUMNS[-2 * (ndim - 1):]  # (y, x) or (z, y, x) pairs
    sl = [slice(None)]  # all channels
    for a in range(0, len(names), 2):
        lo, hi = (row.get(names[a]) or "").strip(), (row.get(names[a + 1]) or "").strip()
        try:
            sl.append(slice(int(lo) if lo else None, int(hi) if hi else None))
        except ValueError:
            raise LabeledDataError(f"{where}: region columns {names[a]},{names[a + 1]} must be integers, "
                                   f"found {lo!r},{hi!r}") from None
    return tuple(sl)


def _from_paths(name: str, paths: list[str], labels: list[str], splits: list[str] | None,
                regions: list[dict] | None, where: str) -> LabeledSet:
    from ..io import ImageReadError, open_image

    class_names = sorted(set(labels))
    images = []
    for p in paths:
        try:
            images.append(open_image(p))
        except ImageReadError as exc:
            raise LabeledDataError(f"{where}: {exc}") from exc
    first = images[0]
    for img in images[1:]:
        if img.spatial_dims != first.spatial_dims or img.shape[0] != first.shape[0]:
            raise LabeledDataError(
                f"{where}: {img.path} has shape {img.shape} ({img.axes}), {first.path} has {first.shape} "
                f"({first.axes}); all labeled images need the same channels and spatial dims")
    region = [(_region(r, len(first.shape), where) if r else None) for r in (regions or [None] * len(paths))]

    def get_image(i: int) -> np.ndarray:
        return images[i].read(region[i]).astype(np.float32)

    split = None
    if splits is not None:
        bad = sorted(set(splits) - set(SPLITS))
        if bad:
            raise LabeledDataError(f"{where}: split values {bad}; use train, val or test")
        split = np.asarray(splits).astype(str)
    # Paths, sizes, modification times and regions: changes when the labeled images change.
    h = hashlib.sha1()
    for p, r in zip(paths, region):
        st = os.stat(p)
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}|{r}\n".encode())
    fingerprint = f"{name}:{len(paths)}:{h.hexdigest()[:16]}"
    return LabeledSet(name=name, num_items=len(paths), get_image=get_image,
                      labels=np.array([class_names.index(lab) for lab in labels]), class_names=class_names,
                      channel_names=list(first.channel_names), spatial_dims=first.spatial_dims,
                      spacing=list(first.spacing), units=list(first.units), split=split,
                      fingerprint=fingerprint, info={"format": first.format})


def load_csv(csv_path) -> LabeledSet:
    """Read a labels CSV (`path,label[,split][,z0,z1,y0,y1,x0,x1]`, paths relative to the CSV)."""
    csv_path = Path(csv_path)
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in (reader.fieldnames or [])]
        if "path" not in fields or "label" not in fields:
            raise LabeledDataError(f"{csv_path}: needs a header with columns path,label[,split] "
                                   f"(found {fields})")
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    if not rows:
        raise LabeledDataError(f"{csv_path}: no rows")
    paths = [str(p if Path(p).is_absolute() else csv_path.parent / p) for p in (r["path"] for r in rows)]
    splits = [r["split"].lower() for r in rows] if "split" in fields and all(r["split"] for r in rows) else None
    has_region = any(c in fields for c in REGION_COLUMNS)
    return _from_paths(csv_path.stem, paths, [r["label"] for r in rows], splits,
                       rows if has_region else None, str(csv_path))


def load_folder(root) -> LabeledSet:
    """Read `ROOT/<class>/*` or `ROOT/{train,test}/<class>/*` (every entry a file or series folder)."""
    root = Path(root)
    split_dirs = [d for d in ("train", "val", "test") if (root / d).is_dir()]
    paths, labels, splits = [], [], []
    for split in split_dirs or [None]:
        base = root / split if split else root
        for class_dir in sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")):
            for entry in sorted(class_dir.iterdir()):
                if entry.name.startswith("."):
                    continue
                paths.append(str(entry))
                labels.append(class_dir.name)
                splits.append(split)
    if not paths:
        raise LabeledDataError(f"{root}: no labeled images; expected ROOT/<class>/<image files> or "
                               "ROOT/train/<class>/... and ROOT/test/<class>/...")
    return _from_paths(root.name, paths, labels, splits if split_dirs else None, None, str(root))


def load_labeled(source) -> LabeledSet:
    """A `LabeledSet` from a labels CSV or a folder per class (see the module docstring)."""
    source = Path(source)
    if source.is_file():
        return load_csv(source)
    if source.is_dir():
        return load_folder(source)
    raise LabeledDataError(f"{source}: no such labels CSV or folder")
