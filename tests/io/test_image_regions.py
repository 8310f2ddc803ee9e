"""LazyImage.normalize_region: the fast path for plain int slices agrees with slice semantics."""

import itertools

import numpy as np
import pytest

from domainssl.io.image import LazyImage


class _Mem(LazyImage):
    def __init__(self, data):
        super().__init__("mem", data.shape, "CYX", (1.0, 1.0), ("px", "px"),
                         [f"c{i}" for i in range(data.shape[0])], data.dtype)
        self.data = data

    def _read(self, bounds):
        return self.data[tuple(slice(a, b) for a, b in bounds)]


def _reference(shape, region):
    """Bounds and steps as Python's slice semantics define them."""
    region = tuple(region) + (slice(None),) * (len(shape) - len(region))
    bounds, steps = [], []
    for sl, n in zip(region, shape):
        a, b, st = sl.indices(n)
        bounds.append((a, max(a, b)))
        steps.append(slice(None, None, st) if st != 1 else slice(None))
    return bounds, tuple(steps)


def test_regions_normalise_and_read_as_numpy_slices():
    data = np.arange(2 * 7 * 9, dtype=np.int16).reshape(2, 7, 9)
    img = _Mem(data)
    ends = [None, 0, 3, 7, 9, 12, -2]
    for y0, y1, x0 in itertools.product(ends, ends, ends):
        for region in ((slice(None), slice(y0, y1), slice(x0, 9)), (slice(0, 1), slice(y0, y1)),
                       (slice(None), slice(y0, y1, 2), slice(x0, None)),
                       (slice(None), slice(np.int64(1), np.int64(5)), slice(x0, None))):
            assert img.normalize_region(region) == _reference(data.shape, region), region
            np.testing.assert_array_equal(img.read(region), data[region])
    with pytest.raises(TypeError):
        img.normalize_region((slice(None), 3))
    with pytest.raises(ValueError):
        img.normalize_region((slice(None),) * 4)
