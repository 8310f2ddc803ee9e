"""Labeled images for few-label transfer: a CSV, a folder per class, or in-memory arrays.

A CSV (UTF-8, with or without the byte-order mark Excel writes) has a header with at least
`path,label`; optional columns:
    split          train / test / val for every row (val rows are kept and ignored by the protocol)
    z0,z1,y0,y1,x0,x1   a region (pixel indices, stop exclusive); empty cells mean the whole axis;
                   indices of the volume `open_image` gives (a DICOM series with uneven or missing
                   slices is on its regular grid: `meta["z_positions"]` has each plane's mm);
                   a region must lie inside its image (0 <= start < stop <= size), else the
                   error names the line, file, region and image shape
Paths are relative to the CSV's folder (absolute paths work too) and may be any file
`domainssl.open_image` reads (DICOM series folders, NIfTI, GeoTIFF, OME-TIFF/Zarr, PNG/JPEG).
Rows whose cells are all empty are skipped; an empty path, label or split cell is an error.

Labels are class names as written, with surrounding spaces removed; labels that are numbers
name the number, so `1`, `1.0` and ` 01` are one class "1" (`label_name`). A set needs at
least two classes.

A folder holds one sub-folder per class (`ROOT/<class>/*`) or, with a fixed split,
`ROOT/train/<class>/*` and `ROOT/test/<class>/*`. Hidden files and files that are clearly not
images (README.txt, notes.md, Thumbs.db, ...: `NOT_IMAGE_SUFFIXES`) are skipped with a warning.

All images need the same channels. When they name them (band descriptions, stains), images
with the same names in another order are read in the first image's order; other names are
refused. Images whose spacing differs from the first image's get a warning (the set carries one
spacing, the first image's).

Without a split, `LabeledSet.with_split` makes a seeded stratified one.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import warnings
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .card import _is_generic  # the card's rule for channel names that carry no meaning (c0, ch1, gray)

REGION_COLUMNS = ("z0", "z1", "y0", "y1", "x0", "x1")
SPLITS = ("train", "val", "test")
# Files in a class folder that are clearly not images (notes, listings, OS thumbnail caches).
NOT_IMAGE_SUFFIXES = (".txt", ".md", ".rst", ".csv", ".tsv", ".json", ".yaml", ".yml", ".db", ".ini",
                      ".log", ".pdf", ".html", ".xlsx", ".xls", ".doc", ".docx", ".py", ".sh")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class LabeledDataError(ValueError):
    """Labeled data that cannot be used (bad CSV, unreadable file, inconsistent channels)."""


class LabeledDataWarning(UserWarning):
    """Labeled data that can be used but may not be what was meant (skipped files, mixed spacing)."""


@dataclass
class LabeledSet:
    """Labeled images, read on demand.

    Attributes:
        name: a short name for reports.
        num_items: number of images.
        get_image: `i -> float32 array (C, Y, X) or (C, Z, Y, X)` in the data's own units;
            pixels the reader marks invalid (`read_mask`: GeoTIFF nodata, GDAL masks) are NaN,
            which preprocessing fills as the pretraining views do.
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
        return replace(self, split=stratified_split(self.labels, test_fraction, seed,
                                                    class_names=self.class_names, where=self.name))

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


def _check_stratifiable(labels: np.ndarray, test_fraction: float, class_names: Sequence[str] | None,
                        where: str) -> None:
    """Refuse, naming the classes, what sklearn's stratified split would refuse with class indices."""
    values, counts = np.unique(labels, return_counts=True)
    names = [str(class_names[v]) if class_names is not None else str(v) for v in values]
    small = [f"{n!r} ({c} image)" for n, c in zip(names, counts) if c < 2]
    if small:
        which = f"class {small[0]} has" if len(small) == 1 else f"classes {', '.join(small)} have"
        raise LabeledDataError(
            f"{where}: a train/test split needs at least 2 images per class (one for each side); {which} "
            "fewer. Add images of such a class, remove its rows, or give a split column (train/test per row)")
    n_test = int(np.ceil(test_fraction * len(labels)))  # how sklearn sizes the test side
    if min(n_test, len(labels) - n_test) < len(values):
        raise LabeledDataError(
            f"{where}: {len(labels)} images with test fraction {test_fraction:g} give {n_test} test and "
            f"{len(labels) - n_test} training images, fewer than the {len(values)} classes {names}; "
            "add images, change the test fraction, or give a split column")


def stratified_split(labels: Sequence[int], test_fraction: float = 0.3, seed: int = 0, *,
                     class_names: Sequence[str] | None = None, where: str = "labels") -> np.ndarray:
    """A seeded stratified split: str array of "train"/"test" with `test_fraction` of each class in test.

    Raises:
        LabeledDataError: a class has a single image, or a side would get fewer images than there
            are classes (`class_names` name the classes in the message).
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    _check_stratifiable(labels, test_fraction, class_names, where)
    idx = np.arange(len(labels))
    _, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=labels)
    split = np.full(len(labels), "train", dtype=object)
    split[test] = "test"
    return split.astype(str)


def _array_layout(shape: tuple[int, ...], spatial_dims: int | None,
                  channel_names: Sequence[str] | None, name: str) -> tuple[int, bool]:
    """(spatial dims, whether the array lacks a channel axis) of an image array `(N, ...)`;
    the rule is `from_arrays`'s docstring."""
    ndim = len(shape)
    forms = "(N, C, Y, X), (N, Y, X), (N, C, Z, Y, X) or (N, Z, Y, X)"
    if spatial_dims is not None:
        if spatial_dims not in (2, 3):
            raise LabeledDataError(f"{name}: spatial_dims must be 2 or 3, got {spatial_dims!r}")
        if ndim == spatial_dims + 2:
            return spatial_dims, False
        if ndim == spatial_dims + 1:
            return spatial_dims, True
        raise LabeledDataError(
            f"{name}: images of shape {shape} are not {spatial_dims}D images: with spatial_dims="
            f"{spatial_dims} give (N, C, {'Z, ' if spatial_dims == 3 else ''}Y, X) or "
            f"(N, {'Z, ' if spatial_dims == 3 else ''}Y, X) for one channel")
    if ndim == 3:
        return 2, True  # (N, Y, X): no 1D images, so the second axis is spatial
    if ndim == 5:
        return 3, False  # (N, C, Z, Y, X): no 4D images
    if ndim != 4:
        raise LabeledDataError(f"{name}: expected images {forms}, found shape {shape}")
    if channel_names is not None and len(channel_names) == shape[1]:
        return 2, False
    if channel_names is not None and len(channel_names) == 1:
        return 3, True
    if channel_names is None and shape[1] == 1:
        return 2, False  # (N, 1, Y, X): one channel (a volume of one plane is no volume)
    if channel_names is not None:
        raise LabeledDataError(
            f"{name}: {len(channel_names)} channel names {list(channel_names)} fit neither reading of "
            f"images of shape {shape}: (N, C, Y, X) with C = {shape[1]} channels, or one-channel "
            f"(N, Z, Y, X) volumes; give {shape[1]} names or 1")
    raise LabeledDataError(
        f"{name}: images of shape {shape} are ambiguous: {shape[1]} channels of {shape[2]}x{shape[3]} 2D "
        f"images (N, C, Y, X), or one-channel {shape[1]}x{shape[2]}x{shape[3]} volumes (N, Z, Y, X). "
        f"Pass spatial_dims=2 (or channel_names with {shape[1]} names) for the first, spatial_dims=3 "
        "(or images[:, None]) for the second")


def from_arrays(images: np.ndarray, labels: Sequence, *, class_names: Sequence[str] | None = None,
                split: Sequence[str] | None = None, channel_names: Sequence[str] | None = None,
                spacing=None, units=None, spatial_dims: int | None = None, name: str = "arrays",
                info: dict | None = None) -> LabeledSet:
    """A labeled set from an image array and labels.

    Which axes are channels, by the array's number of dims (N images first):
        (N, Y, X)              2D, one channel.
        (N, C, Z, Y, X)        3D, C channels.
        (N, C, Y, X) or (N, Z, Y, X)   decided by `spatial_dims` (2: C channels of 2D images;
                               3: one-channel volumes), else by `channel_names` (as many names as
                               the second axis: channels; one name: a one-channel volume), else a
                               second axis of 1 is one channel; anything else is ambiguous and
                               refused with a message saying what to pass.
    With `spatial_dims`, an array of spatial_dims + 1 dims is one channel, of spatial_dims + 2
    dims has channels. Images are stored as `(N, C, *S)` either way.

    Args:
        labels: (N,) class values; without `class_names` the sorted distinct values become the
            classes (`class_names` str of them), with it they are indices into it.
        channel_names: one per channel (default c0, c1, ...); spacing, units: per spatial axis.

    Raises:
        LabeledDataError: labels do not match the images, or the layout is ambiguous or invalid.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(images):
        raise LabeledDataError(f"{name}: {len(images)} images but labels of shape {labels.shape}")
    dims, no_channel_axis = _array_layout(images.shape, spatial_dims, channel_names, name)
    if no_channel_axis:
        images = images[:, None]
    if channel_names is not None and len(channel_names) != images.shape[1]:
        raise LabeledDataError(f"{name}: {len(channel_names)} channel names {list(channel_names)} for "
                               f"images with {images.shape[1]} channel(s), shape {images.shape} (N, C, *S)")
    if class_names is None:
        values = sorted(set(labels.tolist()))
        class_names = [str(v) for v in values]
        labels = np.array([values.index(v) for v in labels.tolist()])
    chans = channel_names or [f"c{i}" for i in range(images.shape[1])]
    fingerprint = f"{name}:{images.shape}:{images.dtype}:{hashlib.sha1(np.ascontiguousarray(images)).hexdigest()[:16]}"
    return LabeledSet(name=name, num_items=len(images), get_image=lambda i: images[i].astype(np.float32),
                      labels=labels.astype(int), class_names=list(map(str, class_names)),
                      channel_names=list(chans), spatial_dims=dims, spacing=spacing, units=units,
                      split=None if split is None else np.asarray(split).astype(str),
                      fingerprint=fingerprint, info=dict(info or {}))


def _region_bounds(row: dict, names: Sequence[str]) -> list[tuple[int | None, int | None]]:
    """(start, stop) per spatial axis from a CSV row's region cells; None where a cell is empty."""
    bounds = []
    for a in range(0, len(names), 2):
        cells = [(row.get(n) or "").strip() for n in names[a:a + 2]]
        try:
            bounds.append(tuple(int(c) if c else None for c in cells))
        except ValueError:
            raise LabeledDataError(f"region columns {names[a]},{names[a + 1]} must be integers, "
                                   f"found {cells[0]!r},{cells[1]!r}") from None
    return bounds


def region_problem(bounds, spatial_shape: Sequence[int], names: Sequence[str]) -> str | None:
    """Why a region does not lie inside an image of `spatial_shape`, or None when it does.

    A region must satisfy 0 <= start < stop <= size on every axis: reads clip silently, so a
    region partly outside the image would be cut and then stretched to the encoder's input size.
    """
    for (lo, hi), size, axis in zip(bounds, spatial_shape, names[::2]):
        axis = axis[0]
        start, stop = (0 if lo is None else lo), (size if hi is None else hi)
        if not 0 <= start < stop <= size:
            return (f"{axis}0={start}, {axis}1={stop} is not inside the image's {axis} axis of {size} pixels "
                    f"(need 0 <= {axis}0 < {axis}1 <= {size})")
    return None


def _check_regions(csv_path, rows: Sequence[dict], lines: Sequence[int], paths: Sequence[str],
                   image_of: Callable[[str, str], Any]) -> int:
    """Check every row's region (`z0,z1,y0,y1,x0,x1` cells) against its image's shape.

    `image_of(path, where)` gives the opened image of a row (`load_csv` passes the images it has
    opened; `preprocess.check_regions` opens headers). Rows without region cells are skipped.
    Returns the number of regions checked.

    Raises:
        LabeledDataError: naming the CSV line, the file, the region and the image's shape.
    """
    checked = 0
    for row, line, path in zip(rows, lines, paths):
        if not any(row.get(c) for c in REGION_COLUMNS):
            continue
        where = f"{csv_path}, line {line}"
        image = image_of(path, where)
        spatial = tuple(image.shape[1:])
        names = REGION_COLUMNS[-2 * len(spatial):]
        try:
            problem = region_problem(_region_bounds(row, names), spatial, names)
        except LabeledDataError as exc:
            raise LabeledDataError(f"{where}: {exc}") from None
        if problem:
            region = ",".join(f"{n}={row.get(n) or ''}" for n in names)
            raise LabeledDataError(
                f"{where}: region {region} of {path}: {problem}; the image is {image.shape} "
                f"({image.axes}). Fix the region columns (pixel indices, stop exclusive; "
                "leave both cells of an axis empty for the whole axis)")
        checked += 1
    return checked


def _region(row: dict, ndim: int, where: str) -> tuple[slice, ...]:
    """The read region of a CSV row: all channels, then (start, stop) per spatial axis."""
    try:
        bounds = _region_bounds(row, REGION_COLUMNS[-2 * (ndim - 1):])  # (y, x) or (z, y, x) pairs
    except LabeledDataError as exc:
        raise LabeledDataError(f"{where}: {exc}") from None
    return (slice(None),) + tuple(slice(lo, hi) for lo, hi in bounds)


def label_name(text) -> str:
    """The class name of a label cell: stripped; a number names its value ("1.0", " 01" -> "1").

    Spreadsheets write integer labels as 1 or 1.0 depending on the column type; both must be one
    class. Other text is kept as written (case-sensitive).
    """
    text = str(text).strip()
    if not _NUMBER.match(text):
        return text
    value = Decimal(text)  # exact: no float rounding of long integer codes
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _class_order(name: str):
    """Sort key: numeric class names by value (2 before 10), then the others alphabetically."""
    return (0, Decimal(name), "") if _NUMBER.match(name) else (1, Decimal(0), name)


def _check_two_classes(class_names: list[str], labels: list[str], where: str) -> None:
    """Refuse a set of one class: any probe would predict it and report 100 % accuracy."""
    if len(class_names) < 2:
        found = f"only class {class_names[0]!r} ({len(labels)} images)" if class_names else "no classes"
        raise LabeledDataError(f"{where}: found {found}; a probe needs labeled images of at least 2 "
                               "classes (accuracy on one class says nothing about the encoder)")


def _channel_orders(images: list, where: str) -> list[list[int] | None]:
    """Per image, the channel indices that give the first image's channel order (None: as stored).

    Images that name their channels may store the same channels in another order (GeoTIFF band
    descriptions); reading them by position would feed the probe mixed-up channels.
    """
    first = images[0]
    orders: list[list[int] | None] = []
    for img in images:
        names = img.channel_names
        if names == first.channel_names or _is_generic(names) or _is_generic(first.channel_names):
            orders.append(None)  # same names, or no names to go by: position is all there is
        elif sorted(names) == sorted(first.channel_names) and len(set(names)) == len(names):
            orders.append([names.index(n) for n in first.channel_names])
        else:
            raise LabeledDataError(
                f"{where}: {img.path} has channels {names}, {first.path} has {first.channel_names}; all "
                "labeled images need the same channels (any order). Give the files the same band/channel "
                "names, or leave out the images with other channels")
    return orders


def _spacing_text(img) -> str:
    """"10 x 10 m" (or per-axis units when they differ)."""
    units = set(img.units)
    if len(units) == 1:
        return " x ".join(f"{s:g}" for s in img.spacing) + f" {img.units[0]}"
    return " x ".join(f"{s:g} {u}" for s, u in zip(img.spacing, img.units))


def _warn_mixed_spacing(images: list, where: str) -> None:
    """Warn when images differ in spacing: the set (and the input spec) carries the first one's."""
    first = images[0]
    other = [img for img in images[1:] if tuple(img.units) != tuple(first.units)
             or not np.allclose(img.spacing, first.spacing, rtol=1e-3, atol=0)]
    if other:
        warnings.warn(
            f"{where}: {len(other)} of {len(images)} labeled images have another pixel spacing than the "
            f"first, e.g. {other[0].path} has {_spacing_text(other[0])}, {first.path} has "
            f"{_spacing_text(first)}; every image is treated as having the first one's "
            "spacing. Resample the images to one spacing for a fair probe", LabeledDataWarning, stacklevel=4)


def _from_paths(name: str, paths: list[str], labels: list[str], splits: list[str] | None,
                regions: list[dict] | None, where: str, info: dict | None = None,
                lines: list[int] | None = None) -> LabeledSet:
    """A set of image files. `regions`: the CSV rows (region cells) or None; `lines`: their line
    numbers in the CSV `where` (regions are then checked against each image's shape)."""
    from ..io import ImageReadError, open_image

    labels = [label_name(lab) for lab in labels]
    class_names = sorted(set(labels), key=_class_order)
    images, opened = [], {}
    for p in paths:
        if p not in opened:  # rows that crop one volume (or slice it) share one open image
            try:
                opened[p] = open_image(p)
            except ImageReadError as exc:
                raise LabeledDataError(f"{where}: {exc}") from exc
        images.append(opened[p])
    _check_two_classes(class_names, labels, where)
    first = images[0]
    for img in images[1:]:
        if img.spatial_dims != first.spatial_dims or img.shape[0] != first.shape[0]:
            raise LabeledDataError(
                f"{where}: {img.path} has shape {img.shape} ({img.axes}), {first.path} has {first.shape} "
                f"({first.axes}); all labeled images need the same channels and spatial dims")
    if regions is not None:
        # reads clip regions silently: one outside its image would be cut and then stretched
        _check_regions(where, regions, lines, paths, lambda p, _where: opened[p])
    orders = _channel_orders(images, where)
    _warn_mixed_spacing(images, where)
    region = [(_region(r, len(first.shape), where) if r else None) for r in (regions or [None] * len(paths))]

    # Rows that each name one z plane of a volume (z1 = z0 + 1) are 2D slices: a 2D encoder
    # takes them as (C, Y, X) images.
    slices = first.spatial_dims == 3 and all(
        r is not None and r[1].start is not None and r[1].stop == r[1].start + 1 for r in region)
    dims = 2 if slices else first.spatial_dims

    def get_image(i: int) -> np.ndarray:
        arr = images[i].read(region[i]).astype(np.float32)
        # the reader's nodata (GeoTIFF nodata, GDAL masks) becomes NaN, so that preprocessing
        # fills it as the pretraining views fill masked pixels (read after `read`: same region)
        mask = images[i].read_mask(region[i])
        if mask is not None and not mask.all():
            arr[:, ~mask] = np.nan
        arr = arr if orders[i] is None else arr[orders[i]]
        return arr[:, 0] if slices else arr

    split = None
    if splits is not None:
        bad = sorted(set(splits) - set(SPLITS))
        if bad:
            raise LabeledDataError(f"{where}: split values {bad}; use train, val or test")
        split = np.asarray(splits).astype(str)
    # Paths, sizes, modification times and regions: changes when the labeled images change.
    h = hashlib.sha1()
    # how the images are read (channel order, 2D slices) and labelled: a feature cache written
    # under other rules must not be reused
    h.update(f"orders={orders}|slices={slices}|classes={class_names}|nodata=nan\n".encode())
    for p, r in zip(paths, region):
        st = os.stat(p)
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}|{r}\n".encode())
    fingerprint = f"{name}:{len(paths)}:{h.hexdigest()[:16]}"
    return LabeledSet(name=name, num_items=len(paths), get_image=get_image,
                      labels=np.array([class_names.index(lab) for lab in labels]), class_names=class_names,
                      channel_names=list(first.channel_names), spatial_dims=dims,
                      spacing=list(first.spacing)[-dims:], units=list(first.units)[-dims:], split=split,
                      fingerprint=fingerprint, info={"format": first.format, **(info or {})})


def _need_cells(csv_path: Path, rows: list[dict], lines: list[int], column: str, what: str) -> None:
    """Refuse rows whose `column` cell is empty, naming their line numbers in the file."""
    empty = [line for row, line in zip(rows, lines) if not row.get(column)]
    if empty:
        shown = ", ".join(map(str, empty[:10])) + (f" and {len(empty) - 10} more" if len(empty) > 10 else "")
        raise LabeledDataError(f"{csv_path}: empty {column} on line {shown} ({len(empty)} of {len(rows)} "
                               f"rows); {what}")


def _read_rows(csv_path: Path) -> tuple[list[str], list[dict], list[int]]:
    """Header fields, rows (stripped cells) and each row's line number; rows of empty cells are skipped."""
    # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark that would glue onto "path".
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in (reader.fieldnames or [])]
        rows, lines = [], []
        for row in reader:
            row = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else "" for k, v in row.items()}
            if any(row.values()):  # spreadsheets leave rows of empty cells (",,") below the data
                rows.append(row)
                lines.append(reader.line_num)
    return fields, rows, lines


def _csv_paths(csv_path: Path, rows: list[dict]) -> list[str]:
    """Each row's image path: relative paths are relative to the CSV's folder."""
    return [str(p if Path(p).is_absolute() else csv_path.parent / p) for p in (r["path"] for r in rows)]


def load_csv(csv_path) -> LabeledSet:
    """Read a labels CSV (`path,label[,split][,z0,z1,y0,y1,x0,x1]`, paths relative to the CSV).

    Raises:
        LabeledDataError: no path/label header, no rows, an empty path, label or (with a split
            column) split cell, fewer than two classes, an unreadable image, or a region that
            does not lie inside its image (0 <= start < stop <= size on every axis; the message
            names the line, the file, the region and the image's shape).
    """
    csv_path = Path(csv_path)
    try:
        fields, rows, lines = _read_rows(csv_path)
    except UnicodeDecodeError as exc:
        raise LabeledDataError(f"{csv_path}: not UTF-8 text ({exc}); save it as CSV UTF-8") from None
    if "path" not in fields or "label" not in fields:
        raise LabeledDataError(f"{csv_path}: needs a header with columns path,label[,split] "
                               f"(found {fields})")
    if not rows:
        raise LabeledDataError(f"{csv_path}: no rows")
    _need_cells(csv_path, rows, lines, "path", "give every row an image path or delete the row")
    _need_cells(csv_path, rows, lines, "label", "give every row a class label or delete the row")
    splits = None
    if "split" in fields:
        # A partly filled split column is a mistake, not a request for a random split.
        _need_cells(csv_path, rows, lines, "split", "give every row train, val or test, or delete the split "
                    "column for a random stratified split")
        splits = [r["split"].lower() for r in rows]
    paths = _csv_paths(csv_path, rows)
    has_region = any(c in fields for c in REGION_COLUMNS)
    return _from_paths(csv_path.stem, paths, [r["label"] for r in rows], splits,
                       rows if has_region else None, str(csv_path), lines=lines)


def _not_an_image(entry: Path) -> bool:
    """Hidden entries (.DS_Store) and files that are clearly notes or caches (README.txt, Thumbs.db)."""
    return entry.name.startswith(".") or (entry.is_file() and entry.suffix.lower() in NOT_IMAGE_SUFFIXES)


def load_folder(root) -> LabeledSet:
    """Read `ROOT/<class>/*` or `ROOT/{train,test}/<class>/*` (every entry a file or series folder).

    Hidden files and files with a `NOT_IMAGE_SUFFIXES` suffix are skipped, with one warning that
    counts them (the count is also in `info["skipped_files"]`).
    """
    root = Path(root)
    split_dirs = [d for d in ("train", "val", "test") if (root / d).is_dir()]
    paths, labels, splits, skipped = [], [], [], []
    for split in split_dirs or [None]:
        base = root / split if split else root
        for class_dir in sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")):
            for entry in sorted(class_dir.iterdir()):
                if _not_an_image(entry):
                    skipped.append(entry)
                    continue
                paths.append(str(entry))
                labels.append(class_dir.name)
                splits.append(split)
    if not paths:
        raise LabeledDataError(f"{root}: no labeled images; expected ROOT/<class>/<image files> or "
                               "ROOT/train/<class>/... and ROOT/test/<class>/...")
    if skipped:
        examples = ", ".join(str(p.relative_to(root)) for p in skipped[:3])
        warnings.warn(f"{root}: skipped {len(skipped)} file(s) that are not images (e.g. {examples})",
                      LabeledDataWarning, stacklevel=2)
    return _from_paths(root.name, paths, labels, splits if split_dirs else None, None, str(root),
                       info={"skipped_files": len(skipped)} if skipped else None)


def load_labeled(source) -> LabeledSet:
    """A `LabeledSet` from a labels CSV or a folder per class (see the module docstring)."""
    source = Path(source)
    if source.is_file():
        return load_csv(source)
    if source.is_dir():
        return load_folder(source)
    raise LabeledDataError(f"{source}: no such labels CSV or folder")
