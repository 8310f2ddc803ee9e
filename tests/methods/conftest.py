"""Fixtures for method tests: the synthetic stripes data (built once) and a quiet CPU Trainer."""

import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def stripes():
    """{"train": (images, labels), "eval": (images, labels)}: 512 / 256 images, 1x32x32."""
    from synthetic import make_stripes

    return {"train": make_stripes(512, seed=0), "eval": make_stripes(256, seed=1)}


@pytest.fixture
def make_trainer(tmp_path):
    """Build a CPU lightning Trainer with no logger or progress bar."""
    import lightning as L

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    def make(max_steps, **kw):
        kw.setdefault("enable_checkpointing", False)
        return L.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=str(tmp_path), num_sanity_val_steps=0, **kw)

    return make
