"""Loaders for the three public labeled sets used to measure label efficiency.

Each returns a `LabeledSet` with a split (see datasets/*.md for the cards):
    pneumoniamnist   PneumoniaMNIST 28×28 chest X-rays, 2 classes, official train/val/test split
                     (fixed: a test fraction or split seed does not apply)
    coffee           Brazilian Coffee Scenes 64×64 SPOT tiles (green, red, NIR), 2 classes,
                     stratified split, by default 70/30 with seed 0 (the cards' numbers)
    jurkat           Jurkat imaging flow cytometry 40×40, 3 channels, 4 classes G1/S/G2/M
                     (prophase, metaphase, anaphase, telophase merged into M), stratified split,
                     by default 70/30 with seed 0

The data are not shipped with domainssl; point `root` at a folder laid out as the files'
sources give them (or set DOMAINSSL_SHARED_DATA to the folder that holds `labeled/`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .labeled import LabeledDataError, LabeledSet, from_arrays, stratified_split

SHARED_SETS = ("pneumoniamnist", "coffee", "jurkat")


def default_shared_root() -> Path:
    """`$DOMAINSSL_SHARED_DATA/labeled`, or `../shared/data/labeled` beside the repository."""
    env = os.environ.get("DOMAINSSL_SHARED_DATA")
    base = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"
    return base / "labeled"


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise LabeledDataError(f"{path}: {what} not found; set DOMAINSSL_SHARED_DATA to the folder that "
                               "holds labeled/ or pass its root explicitly")
    return path


def load_pneumoniamnist(root=None) -> LabeledSet:
    """PneumoniaMNIST (`medmnist/pneumoniamnist.npz`): (N, 1, 28, 28) uint8, normal / pneumonia.

    Uses the official train / val / test split (4707 / 524 / 624 images).
    """
    root = Path(root) if root else default_shared_root()
    path = _need(root / "medmnist" / "pneumoniamnist.npz", "PneumoniaMNIST npz")
    with np.load(path) as z:
        parts = [(s, z[f"{s}_images"], z[f"{s}_labels"].reshape(-1)) for s in ("train", "val", "test")]
    images = np.concatenate([p[1] for p in parts])[:, None]
    labels = np.concatenate([p[2] for p in parts]).astype(int)
    split = np.concatenate([[p[0]] * len(p[1]) for p in parts])
    return from_arrays(images, labels, class_names=["normal", "pneumonia"], split=split,
                       channel_names=["xray"], name="pneumoniamnist",
                       info={"source": str(path), "split_rule": "official MedMNIST split"})


def load_coffee(root=None, seed: int = 0, test_fraction: float = 0.3) -> LabeledSet:
    """Brazilian Coffee Scenes: (2876, 3, 64, 64) uint8 SPOT tiles, coffee / noncoffee.

    Labels come from `desc.txt` lines `<class>.<county>.<tile>` whose image is
    `images/<county>.<tile>.jpg`. Channels are green, red, NIR (false colour; the order is
    not documented by the source). Split: stratified 70/30 with `seed`.
    """
    from PIL import Image

    root = Path(root) if root else default_shared_root()
    base = _need(root / "brazilian_coffee_scenes", "Brazilian Coffee Scenes folder")
    lines = [ln.strip() for ln in _need(base / "desc.txt", "desc.txt").read_text().splitlines() if ln.strip()]
    images, labels, counties = [], [], []
    for line in lines:
        cls, rest = line.split(".", 1)
        path = base / "images" / f"{rest}.jpg"
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))  # the JPEGs store the 3 bands as RGB planes
        images.append(arr.transpose(2, 0, 1))
        labels.append(cls)
        counties.append(rest.split(".", 1)[0])
    names = sorted(set(labels))
    y = np.array([names.index(c) for c in labels])
    return from_arrays(np.stack(images), y, class_names=names, split=stratified_split(y, test_fraction, seed),
                       channel_names=["green", "red", "nir"], name="coffee",
                       info={"source": str(base), "split_rule": f"stratified {1 - test_fraction:.0%}/"
                             f"{test_fraction:.0%}, seed {seed}", "counties": sorted(set(counties))})


JURKAT_MERGE = {"G1": "G1", "S_phase": "S", "G2": "G2", "Prophase": "M", "Metaphase": "M",
                "Anaphase": "M", "Telophase": "M"}


def load_jurkat(root=None, seed: int = 0, test_fraction: float = 0.3) -> LabeledSet:
    """Jurkat cell cycle (imaging flow cytometry): (3418, 3, 40, 40) uint16, channels Ch3/Ch4/Ch6.

    The seven source classes become four: G1, S, G2 and M (the four mitotic phases merged, 718
    cells). Split: stratified 70/30 with `seed`.
    """
    root = Path(root) if root else default_shared_root()
    path = _need(root / "jurkat_cellcycle_ifc" / "jurkat_cellcycle_ifc_40px.npz", "Jurkat npz")
    with np.load(path) as z:
        images, raw, source_names, chans = z["images"], z["labels"], list(z["class_names"]), list(z["channel_names"])
    unknown = [n for n in source_names if n not in JURKAT_MERGE]
    if unknown:
        raise LabeledDataError(f"{path}: unexpected class names {unknown}; expected {sorted(JURKAT_MERGE)}")
    classes = ["G1", "S", "G2", "M"]
    y = np.array([classes.index(JURKAT_MERGE[source_names[i]]) for i in raw])
    return from_arrays(images, y, class_names=classes, split=stratified_split(y, test_fraction, seed),
                       channel_names=[str(c) for c in chans], name="jurkat",
                       info={"source": str(path), "split_rule": f"stratified {1 - test_fraction:.0%}/"
                             f"{test_fraction:.0%}, seed {seed}; mitotic phases merged into M"})


DEFAULT_TEST_FRACTION = 0.3
DEFAULT_SPLIT_SEED = 0
FIXED_SPLIT_SETS = ("pneumoniamnist",)  # published splits: test_fraction / split_seed do not apply


def load_shared_set(name: str, root=None, *, test_fraction: float | None = None,
                    split_seed: int | None = None) -> LabeledSet:
    """One of `SHARED_SETS` by name.

    coffee and jurkat are split stratified with `test_fraction` (default 0.3) and `split_seed`
    (default 0). pneumoniamnist keeps its official split; a test fraction or split seed other
    than the defaults is ignored with a `LabeledDataWarning` saying so.
    """
    loaders = {"pneumoniamnist": load_pneumoniamnist, "coffee": load_coffee, "jurkat": load_jurkat}
    if name not in loaders:
        raise LabeledDataError(f"unknown labeled set {name!r}; choose from {list(loaders)}")
    test_fraction = DEFAULT_TEST_FRACTION if test_fraction is None else float(test_fraction)
    split_seed = DEFAULT_SPLIT_SEED if split_seed is None else int(split_seed)
    if name in FIXED_SPLIT_SETS:
        _warn_split_unused(f"shared:{name}", "its official train/val/test split", test_fraction, split_seed)
        return loaders[name](root)
    return loaders[name](root, seed=split_seed, test_fraction=test_fraction)


def _warn_split_unused(where: str, split: str, test_fraction: float, split_seed: int) -> None:
    """Warn that a non-default test fraction / split seed does not apply to a set with its own split."""
    import warnings

    from .labeled import LabeledDataWarning

    given = []
    if test_fraction != DEFAULT_TEST_FRACTION:
        given.append(f"test fraction {test_fraction:g} (--test-fraction)")
    if split_seed != DEFAULT_SPLIT_SEED:
        given.append(f"split seed {split_seed} (--split-seed)")
    if given:
        verb = "do" if len(given) > 1 else "does"
        warnings.warn(f"{where} keeps {split}; the {' and '.join(given)} {verb} not apply",
                      LabeledDataWarning, stacklevel=3)


def load_labels(spec: str, test_fraction: float = DEFAULT_TEST_FRACTION, split_seed: int = DEFAULT_SPLIT_SEED):
    """A `LabeledSet` with a split from a labels CSV, a folder per class or `shared:NAME` (the
    probe's --data and the pretraining kNN monitor's `monitor.labels`).

    Without a split of its own (a CSV's split column, train/test folders, a published split such
    as PneumoniaMNIST's), the set is split stratified with `test_fraction` and `split_seed`;
    where it has one, other values than the defaults are ignored with a `LabeledDataWarning`.

    A CSV's region columns are checked against each image's shape first: reads clip regions
    silently, so one outside its image would otherwise fail deep in preprocessing, or be stretched.
    """
    from .labeled import load_labeled

    spec = str(spec)
    if spec.startswith("shared:"):
        return load_shared_set(spec.split(":", 1)[1], test_fraction=test_fraction, split_seed=split_seed)
    labeled = load_labeled(spec)  # a CSV's regions are checked as it loads
    if labeled.split is not None:
        _warn_split_unused(spec, "its own split (a split column or train/test folders)", test_fraction,
                           split_seed)
    return labeled.with_split(test_fraction, split_seed)
