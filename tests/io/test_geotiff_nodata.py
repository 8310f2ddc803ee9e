"""GeoTIFF nodata masks with one value for every band: the min/max shortcut (a patch without
the value is all valid) must give the same mask as the per-pixel compare, wherever the value
lies in the dtype's range and whether or not the patch holds it."""

import numpy as np
import pytest

pytest.importorskip("rasterio")

from domainssl.io.geotiff import open_geotiff  # noqa: E402
from raster_factory import write_geotiff  # noqa: E402

REGIONS = [
    (slice(None), slice(0, 16), slice(0, 16)),    # holds the nodata pixels
    (slice(None), slice(40, 64), slice(40, 64)),  # holds none
    (slice(2, 3), slice(0, 16), slice(0, 16)),    # a band without the hole only
    (slice(0, 2), slice(8, 8), slice(0, 16)),     # empty
    (slice(None), slice(50, 60), slice(2, 12)),   # flat, next to the value
]


@pytest.mark.parametrize("dtype, nodata", [("uint16", 0), ("uint16", 65535), ("uint16", 1000),
                                           ("int16", -32768), ("int16", 0), ("int16", 7),
                                           ("uint8", 255)])
def test_mask_equals_per_pixel_compare(tmp_path, dtype, nodata):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(1)
    data = rng.integers(info.min, int(info.max) + 1, (3, 64, 64)).astype(dtype)
    data[data == nodata] = nodata + 1 if nodata < info.max else nodata - 1  # holes only below
    data[0, 2:5, 3:9] = nodata
    data[1, 10, 11] = nodata
    # a flat corner just below (or above) the value: min and max both on one side of it
    data[:, 48:, :16] = nodata - 1 if nodata > info.min else nodata + 1
    path = write_geotiff(tmp_path / f"{dtype}_{nodata}.tif", data, nodata=nodata)
    img = open_geotiff(path)
    for region in REGIONS:
        want = (data[region] != nodata).all(axis=0)
        got = img.read_mask(region)
        assert got.dtype == bool and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        # after a read of the same region (the mask handed over from the read), too
        np.testing.assert_array_equal(img.read(region), data[region])
        np.testing.assert_array_equal(img.read_mask(region), want)
    assert not img.read_mask(REGIONS[0]).all() and img.read_mask(REGIONS[1]).all()
    assert img.read_mask(REGIONS[4]).all()
