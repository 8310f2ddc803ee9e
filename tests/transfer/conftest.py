"""Fixtures for the transfer tests: small generated labeled sets (TIFF files + CSV, encoders)."""

from pathlib import Path

import numpy as np
import pytest

from striped_samples import striped_images


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
