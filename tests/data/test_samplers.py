"""Patch samplers: pixel/physical sizes, determinism, nodata skipping, grid coverage."""

import numpy as np
import pytest

from domainssl.data.samplers import GridPatchSampler, RandomPatchSampler, patch_pixels
from domainssl.io.image import LazyImage


class ArrayImage(LazyImage):
    """An in-memory LazyImage with an optional nodata value (test double for readers)."""

    format = "array"

    def __init__(self, data, spacing, units, nodata=None):
        axes = "CYX" if data.ndim == 3 else "CZYX"
        super().__init__("mem", data.shape, axes, spacing, units,
                         [f"c{i}" for i in range(data.shape[0])], data.dtype)
        self.data, self.nodata, self.reads = data, nodata, 0

    def _read(self, bounds):
        self.reads += 1
        return self.data[tuple(slice(a, b) for a, b in bounds)]

    def _read_mask(self, bounds):
        if self.nodata is None:
            return None
        return (self.data[tuple(slice(a, b) for a, b in bounds)] != self.nodata).all(axis=0)


def test_patch_pixels_physical_and_errors():
    vol = ArrayImage(np.zeros((1, 40, 100, 100), np.float32), (2.5, 0.5, 0.5), ("mm",) * 3)
    assert patch_pixels(vol, [20, 16, 16], "mm") == (8, 32, 32)
    assert patch_pixels(vol, 24, "px") == (24, 24, 24)
    assert patch_pixels(vol, [64, 64], "px") == (1, 64, 64)  # a 2D tile from a volume
    assert patch_pixels(vol, [500, 500, 500], "mm") == (40, 100, 100)  # clipped to the image
    with pytest.raises(ValueError, match="'µm'"):
        patch_pixels(vol, [10, 10, 10], "µm")
    with pytest.raises(ValueError, match="3 spatial axes"):
        patch_pixels(vol, [1, 2, 3, 4], "px")


def test_random_sampler_is_deterministic_and_in_bounds():
    img = ArrayImage(np.zeros((2, 50, 70), np.float32), (1, 1), ("px", "px"))
    s = RandomPatchSampler([16, 20])
    a = [s.sample(img, np.random.default_rng(7))[0] for _ in range(3)]
    b = [s.sample(img, np.random.default_rng(7))[0] for _ in range(3)]
    assert a == b
    corners = set()
    for seed in range(200):
        region, _, ok = s.sample(img, np.random.default_rng(seed))
        assert ok and region[1].stop <= 50 and region[2].stop <= 70
        assert region[1].stop - region[1].start == 16 and region[2].stop - region[2].start == 20
        corners.add((region[1].start, region[2].start))
    assert len(corners) > 150  # positions actually vary


def test_random_sampler_skips_nodata_and_background():
    data = np.zeros((1, 64, 64), np.float32)
    data[:, 32:, 32:] = 5.0  # only the lower-right quadrant holds data; 0 is nodata
    img = ArrayImage(data, (1, 1), ("px", "px"), nodata=0)
    s = RandomPatchSampler([16, 16], min_valid=1.0, max_tries=200)
    for seed in range(20):
        region, _, ok = s.sample(img, np.random.default_rng(seed))
        assert ok and region[1].start >= 32 and region[2].start >= 32
    bg = RandomPatchSampler([16, 16], background=(1.0, 0.5), max_tries=200)
    region, data_read, ok = bg.sample(ArrayImage(data, (1, 1), ("px", "px")), np.random.default_rng(1))
    assert ok and data_read is not None and (data_read[0] > 1).mean() >= 0.5


def test_sampler_gives_up_on_all_nodata_image():
    img = ArrayImage(np.zeros((1, 32, 32), np.float32), (1, 1), ("px", "px"), nodata=0)
    region, _, ok = RandomPatchSampler([8, 8], min_valid=0.5, max_tries=5).sample(img, np.random.default_rng(0))
    assert not ok and region is not None


def test_grid_sampler_covers_the_image():
    img = ArrayImage(np.zeros((1, 10, 50, 45), np.float32), (1, 1, 1), ("mm",) * 3)
    regions = GridPatchSampler([10, 16, 16]).regions(img)
    covered = np.zeros((10, 50, 45), bool)
    for r in regions:
        covered[r[1:]] = True
    assert covered.all()
    assert len(regions) == 1 * 4 * 3  # 0,16,32,34 along y; 0,16,29 along x
    overlap = GridPatchSampler([10, 16, 16], stride=[10, 8, 8]).regions(img)
    assert len(overlap) > len(regions)


def test_sample_draws_the_corners_the_generator_draws_across_images():
    import pickle

    from domainssl.data.samplers import region_for

    images = [ArrayImage(np.zeros((1, 40, 50), np.float32), (1, 1), ("px", "px")),
              ArrayImage(np.zeros((1, 30, 70), np.float32), (1, 1), ("px", "px"))]
    s = RandomPatchSampler([16, 24])
    for seed in range(12):  # alternate images: the per-image sizing must follow the image
        img = images[seed % 2]
        want = region_for(img, next(s.corners(img, np.random.default_rng(seed))), (16, 24))
        assert s.sample(img, np.random.default_rng(seed))[0] == want
    assert pickle.loads(pickle.dumps(s))._sized is None
