"""Fixtures for the transfer tests: small generated labeled sets (arrays, TIFF files + CSV)."""

from pathlib import Path

import numpy as np
import pytest


def striped_images(n_per_class: int = 12, size: int = 16, channels: int = 2, seed: int = 0):
    """Two classes a frozen random CNN separates: horizontal vs vertical stripes, plus noise.

    Returns (images (N, C, size, size) float32, labels (N,) ints).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, labels = [], []
    for label in (0, 1):
        for _ in range(n_per_class):
            phase = rng.uniform(0, 2 * np.pi)
            coord = yy if label == 0 else xx
            base = np.sin(coord * 1.3 + phase)
            img = np.stack([base * (c + 1) for c in range(channels)]) + 0.3 * rng.normal(size=(channels, size, size))
            images.append(100.0 + 20.0 * img)
            labels.append(label)
    return np.asarray(images, np.float32), np.asarray(labels)


def write_tiff_set(root: Path, n_per_class: int = 6, size: int = 16, with_split: bool = True):
    """OME-less TIFF files (C, Y, X) uint16 and a labels CSV `path,label,split` beside them."""
    import tifffile

    images, labels = striped_images(n_per_class, size)
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = ["path,label" + (",split" if with_split else "")]
    for i, (img, lab) in enumerate(zip(images, labels)):
        name = f"img/{i:03d}.tif"
        tifffile.imwrite(root / name, img.astype(np.uint16), photometric="minisblack", metadata={"axes": "CYX"})
        split = "test" if i % 3 == 0 else "train"
        rows.append(f"{name},{'horizontal' if lab == 0 else 'vertical'}" + (f",{split}" if with_split else ""))
    csv = root / "labels.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


@pytest.fixture
def striped():
    """(images (24, 2, 16, 16) float32, labels (24,)) of two stripe orientations."""
    return striped_images()


@pytest.fixture
def tiff_csv(tmp_path):
    """A labels CSV with a split column over 12 generated 2-channel TIFFs."""
    return write_tiff_set(tmp_path)


@pytest.fixture
def encoder_dir(tmp_path):
    """An exported tiny timm CNN for 2-channel 16×16 inputs ("ch0", "ch1"), mean 100 / std 20."""
    import torch

    from domainssl.models import build_encoder
    from domainssl.transfer.encoder_io import export_encoder, make_card

    torch.manual_seed(0)
    enc = build_encoder("test_resnet", 2, 2, (16, 16), channel_names=["ch0", "ch1"])
    card = make_card(enc, channel_names=["ch0", "ch1"],
                     normalization={"mode": "zscore", "stats": {"channel_names": ["ch0", "ch1"], "mean": [100.0, 100.0],
                                                                "std": [20.0, 40.0]}},
                     method={"name": "simclr"}, data={"images": 24})
    return export_encoder(enc, tmp_path / "encoder", card)
