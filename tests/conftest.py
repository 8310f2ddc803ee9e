"""Shared fixtures: the real public samples in ../shared/data, and quiet, single-thread torch."""

import os
from pathlib import Path

import pytest

from striped_samples import striped_images  # noqa: E402  (tests/ is on sys.path)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DOMAINSSL_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real public samples (see its MANIFEST.md); skips when it is absent."""
    if not (SHARED_DATA / "MANIFEST.md").is_file():
        pytest.skip(f"real sample data not found at {SHARED_DATA}: clone with ../shared beside the "
                    "repository or set DOMAINSSL_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    # CI has 2 cores; one torch thread per test process keeps runs predictable.
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    yield


@pytest.fixture(scope="session")
def demo_archive(tmp_path_factory) -> dict:
    """A small generated archive (see domainssl.data.synthetic): tiles, DICOM, NIfTI, OME-Zarr, a broken file."""
    from domainssl.data.synthetic import make_demo_archive

    root = tmp_path_factory.mktemp("demo_archive")
    return make_demo_archive(root, seed=0, n_unlabeled=24, n_train_per_class=4, n_test_per_class=4)


@pytest.fixture
def striped():
    """(images (24, 2, 16, 16) float32, labels (24,)) of two stripe orientations."""
    return striped_images()
