"""GeoTIFF/COG reader: real Sentinel-2 and Landsat files plus generated edge cases."""

import math
import os
import pickle

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
from rasterio.windows import Window  # noqa: E402

from domainssl.io import ImageReadError, open_image  # noqa: E402
from domainssl.io.geotiff import open_geotiff  # noqa: E402
from raster_factory import (corrupt_last_tile, ramp_value, truncate_copy, write_geotiff,  # noqa: E402
                            write_large_tiled_geotiff)

S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


@pytest.fixture(scope="module")
def geo(shared_data):
    return shared_data / "geotiff"


@pytest.fixture(scope="module")
def s2_cog(geo):
    return geo / "s2_l2a_T29RKH_20200219_12band_200m_cog.tif"


def test_sentinel2_cog_header(s2_cog):
    img = open_image(s2_cog)
    assert img.format == "geotiff"
    assert img.shape == (12, 549, 549) and img.axes == "CYX"
    assert img.channel_names == S2_BANDS
    assert img.meta["crs"] == "EPSG:32629"
    assert img.spacing == (200.0, 200.0) and img.units == ("m", "m")
    assert img.meta["transform"] == [200.0, 0.0, 199980.0, 0.0, -200.0, 2800020.0]
    assert img.meta["nodata"] == 0
    assert img.dtype == np.uint16 and "scale" not in img.meta  # file declares scale 1, offset 0


def test_sentinel2_cog_values_and_mask_match_rasterio(s2_cog):
    img = open_image(s2_cog)
    with rasterio.open(s2_cog) as ds:
        b8a = ds.read(9, window=Window(300, 123, 1, 1))[0, 0]
        full = ds.read()
    assert img.read((slice(8, 9), slice(123, 124), slice(300, 301)))[0, 0, 0] == b8a
    region = (slice(2, 7), slice(17, 290), slice(250, 549))
    np.testing.assert_array_equal(img.read(region), full[region])
    np.testing.assert_array_equal(img.read(), full)
    # nodata 0: a pixel is valid when none of the selected bands holds 0
    np.testing.assert_array_equal(img.read_mask(region), (full[region] != 0).all(axis=0))
    # strided regions equal the strided full read
    np.testing.assert_array_equal(img.read((slice(None), slice(0, 549, 7), slice(3, 500, 5))),
                                  full[:, ::7, 3:500:5])


def test_sentinel2_cog_overview_level(s2_cog):
    img = open_image(s2_cog, level=1)
    assert img.shape == (12, 274, 274) and img.meta["levels"] == 3 and img.meta["overviews"] == [2, 4]
    assert img.spacing[0] == pytest.approx(549 * 200 / 274)
    with rasterio.open(s2_cog, overview_level=0) as ds:
        np.testing.assert_array_equal(img.read((slice(3, 4), slice(10, 60), slice(0, 40))),
                                      ds.read([4], window=Window(0, 10, 40, 50)))
    assert open_image(s2_cog, level=2).shape == (12, 137, 137)
    with pytest.raises(ImageReadError, match="overview level"):
        open_image(s2_cog, level=3)


def test_sentinel2_band_files_stack_in_list_order(geo):
    folder = geo / "s2_l2a_T29RKH_20200219_cogs"
    files = [folder / f"{b}.tif" for b in ["B02", "B03", "B04", "B08"]]
    img = open_image(files)
    assert img.shape == (4, 1098, 1098)
    assert img.channel_names == ["B02", "B03", "B04", "B08"]
    assert img.spacing == (100.0, 100.0) and img.meta["crs"] == "EPSG:32629"
    region = (slice(None), slice(400, 656), slice(700, 956))
    block = img.read(region)
    for i, f in enumerate(files):
        with rasterio.open(f) as ds:
            np.testing.assert_array_equal(block[i], ds.read(1, window=Window(700, 400, 256, 256)))
    # a channel sub-range touches only its files and keeps their order
    with rasterio.open(files[2]) as ds:
        np.testing.assert_array_equal(img.read((slice(2, 3),))[0], ds.read(1))


def test_band_files_on_different_grids(geo):
    folder = geo / "s2_l2a_T29RKH_20200219_cogs"
    files = [folder / "B02.tif", folder / "B05.tif"]
    with pytest.raises(ImageReadError, match="different grids.*resample="):
        open_image(files)
    img = open_image(files, resample="nearest")
    assert img.shape == (2, 1098, 1098) and img.channel_names == ["B02", "B05"]
    with rasterio.open(folder / "B05.tif") as ds:
        b05 = ds.read(1)
    # nearest resampling ×2 onto the 100 m grid: each 200 m pixel becomes a 2×2 block
    np.testing.assert_array_equal(img.read((slice(1, 2), slice(0, 200), slice(0, 200)))[0],
                                  np.repeat(np.repeat(b05[:100, :100], 2, 0), 2, 1))


def test_landsat_striped_rgb_with_nodata(geo):
    path = geo / "landsat" / "rasterio_RGB.byte.tif"
    img = open_image(path)
    assert img.shape == (3, 718, 791) and img.channel_names == ["R", "G", "B"]  # colour-interpreted red, green, blue
    from domainssl.transforms import is_rgb

    assert is_rgb(img.channel_names)  # the rgb preset's colour jitter and grey-scale accept it
    assert img.meta["tiled"] is False and img.meta["crs"] == "EPSG:32618"
    # rasterio's res is (x, y); spacing is (y, x)
    assert img.spacing == pytest.approx((300.041782729805, 300.0379266750948))
    with rasterio.open(path) as ds:
        full = ds.read()
    mask = img.read_mask()
    np.testing.assert_array_equal(mask, (full != 0).all(axis=0))
    assert 0.5 < mask.mean() < 0.8  # the scene's collar is nodata
    np.testing.assert_array_equal(img.read((slice(1, 3), slice(300, 420), slice(10, 700))),
                                  full[1:3, 300:420, 10:700])
    np.testing.assert_array_equal(img.read_mask((slice(0, 1), slice(0, 50), slice(0, 50))),
                                  full[0, :50, :50] != 0)


def test_landsat7_geographic_degrees(geo):
    img = open_image(geo / "landsat" / "landsat7_7band_localtileserver.tif")
    assert img.shape == (7, 1482, 1489)
    assert img.channel_names == ["B1", "B2", "B3", "B4", "B5", "B6_VCID_2", "B7"]
    assert img.meta["crs"] == "EPSG:4326" and img.units == ("deg", "deg")
    assert img.spacing == pytest.approx((0.00026949458523585647,) * 2)
    assert img.read_mask() is None  # no nodata declared
    assert img.meta["overviews"] == [2, 4, 8]
    assert open_image(geo / "landsat" / "landsat7_7band_localtileserver.tif", level=3).shape == (7, 185, 186)


def test_float_nan_nodata_mask(tmp_path):
    data = np.arange(3 * 20 * 30, dtype=np.float32).reshape(3, 20, 30)
    data[0, 2, 5] = np.nan
    data[2, 10:12, 20:25] = np.nan
    path = write_geotiff(tmp_path / "nan.tif", data, nodata=float("nan"))
    img = open_image(path)
    assert img.dtype == np.float32 and math.isnan(img.meta["nodata"])
    mask = img.read_mask()
    expected = ~np.isnan(data).any(axis=0)
    np.testing.assert_array_equal(mask, expected)
    assert mask.sum() == 20 * 30 - 1 - 10
    # channel slice honoured: band 1 alone has no NaN
    assert img.read_mask((slice(1, 2),)).all()
    np.testing.assert_array_equal(img.read_mask((slice(2, 3), slice(8, 14), slice(18, 30))),
                                  ~np.isnan(data[2, 8:14, 18:30]))
    np.testing.assert_array_equal(img.read(), data)


def test_scale_offset_applied(tmp_path):
    raw = np.array([[[0, 1000, 11000], [2000, 3000, 65535]]], dtype=np.uint16).repeat(2, axis=0)
    path = write_geotiff(tmp_path / "l2a.tif", raw, nodata=0, scales=[1e-4, 2.0], offsets=[-0.1, 5.0],
                         descriptions=["B04", "B08"], units=["reflectance", "reflectance"])
    img = open_image(path)
    assert img.dtype == np.float32
    assert img.meta["scale"] == [1e-4, 2.0] and img.meta["offset"] == [-0.1, 5.0]
    assert img.meta["value_unit"] == "reflectance"
    assert img.channel_names == ["B04", "B08"]
    out = img.read()
    np.testing.assert_allclose(out[0], raw[0] * 1e-4 - 0.1, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out[1], raw[1] * 2.0 + 5.0, rtol=1e-6)
    assert out[0, 0, 2] == pytest.approx(1.0)
    # the mask works on stored values (nodata 0), not on the scaled ones
    np.testing.assert_array_equal(img.read_mask(), raw[0] != 0)
    np.testing.assert_allclose(img.read((slice(1, 2), slice(1, 2), slice(1, 3))), out[1:2, 1:2, 1:3])


def test_large_tiled_file_window(tmp_path):
    path = write_large_tiled_geotiff(tmp_path / "big.tif", size=8000, bands=2)
    img = open_image(path)
    assert img.shape == (2, 8000, 8000) and img.meta["tiled"] and img.meta["compress"] == "deflate"
    y0, x0 = 5123, 6601  # a window that straddles four 512² tiles
    patch = img.read((slice(None), slice(y0, y0 + 256), slice(x0, x0 + 256)))
    yy, xx = np.mgrid[y0:y0 + 256, x0:x0 + 256]
    np.testing.assert_array_equal(patch, np.stack([ramp_value(yy, xx, b) for b in range(2)]))
    corner = img.read((slice(1, 2), slice(7900, 8000), slice(7950, 8000)))
    yy, xx = np.mgrid[7900:8000, 7950:8000]
    np.testing.assert_array_equal(corner[0], ramp_value(yy, xx, 1))


def test_pickle_reopens_and_reads(s2_cog):
    img = open_image(s2_cog)
    first = img.read((slice(0, 2), slice(0, 32), slice(0, 32)))
    clone = pickle.loads(pickle.dumps(img))
    assert clone._handles is None  # handles are not pickled; the clone reopens lazily
    np.testing.assert_array_equal(clone.read((slice(0, 2), slice(0, 32), slice(0, 32))), first)
    img.close()
    np.testing.assert_array_equal(img.read((slice(0, 2), slice(0, 32), slice(0, 32))), first)


def test_errors_name_the_file(tmp_path, s2_cog):
    with pytest.raises(ImageReadError, match="no such file"):
        open_geotiff(tmp_path / "missing.tif")
    bad = truncate_copy(s2_cog, tmp_path / "cut.tif", keep_fraction=0.01)
    with pytest.raises(ImageReadError, match="cut.tif"):
        open_geotiff(bad).read()
    # cut in the middle: the header is intact, the check of block offsets catches it at open
    half = truncate_copy(s2_cog, tmp_path / "half.tif", keep_fraction=0.5)
    with pytest.raises(ImageReadError, match="half.tif: truncated"):
        open_image(half)


def test_stack_names_from_descriptions_then_stems(tmp_path):
    a = np.full((1, 6, 8), 3, np.uint8)
    b = np.arange(48, dtype=np.uint16).reshape(1, 6, 8)
    two = np.stack([a[0].astype(np.uint16) + 100, b[0] + 200])
    pa = write_geotiff(tmp_path / "red.tif", a, descriptions=["Red"])
    pb = write_geotiff(tmp_path / "nir.tif", b)
    p2 = write_geotiff(tmp_path / "pair.tif", two)
    img = open_image([pa, pb, p2])
    assert img.channel_names == ["Red", "nir", "pair_B1", "pair_B2"]
    assert img.dtype == np.uint16  # mixed uint8 + uint16 files promote
    np.testing.assert_array_equal(img.read(), np.concatenate([a.astype(np.uint16), b, two]))
    np.testing.assert_array_equal(img.read((slice(1, 3), slice(2, 5))), np.concatenate([b, two[:1]])[:, 2:5])
    assert img.path == str(pa) and img.meta["files"] == [str(pa), str(pb), str(p2)]


def test_sentinel2_band_files_nodata_mask(geo):
    folder = geo / "s2_l2a_T29RKH_20200219_cogs"
    files = [folder / f"{b}.tif" for b in ["B02", "B03", "B04", "B08"]]
    img = open_image(files)
    stack = []
    for f in files:
        with rasterio.open(f) as ds:
            stack.append(ds.read(1))
    stack = np.stack(stack)
    assert img.meta["nodata"] == 0
    mask = img.read_mask()
    np.testing.assert_array_equal(mask, (stack != 0).all(axis=0))


def test_mask_after_read_is_fresh_each_time(tmp_path):
    data = np.ones((2, 10, 10), np.uint16)
    data[1, 4, 4] = 0
    img = open_image(write_geotiff(tmp_path / "m.tif", data, nodata=0))
    img.read()
    first = img.read_mask()  # served from the read just made
    expected = np.ones((10, 10), bool)
    expected[4, 4] = False
    np.testing.assert_array_equal(first, expected)
    first[:] = False  # a caller modifying its mask must not change the next answer
    np.testing.assert_array_equal(img.read_mask(), expected)


def test_gdal_cache_is_capped(s2_cog, monkeypatch):
    from rasterio.env import get_gdal_config

    from domainssl.io import geotiff

    if "GDAL_CACHEMAX" in os.environ:
        pytest.skip("GDAL_CACHEMAX set by the user: the reader leaves it alone")
    monkeypatch.setattr(geotiff, "_cache_limited_pid", None)
    open_image(s2_cog).read((slice(0, 1), slice(0, 8), slice(0, 8)))
    assert int(get_gdal_config("GDAL_CACHEMAX")) == geotiff.GDAL_CACHEMAX_BYTES


def test_window_reads_decode_only_needed_tiles(tmp_path):
    data = np.arange(2 * 512 * 512, dtype=np.uint16).reshape(2, 512, 512)
    path = write_geotiff(tmp_path / "tiled.tif", data, tiled=True, blockxsize=128, blockysize=128,
                         compress="deflate", interleave="pixel")
    corrupt_last_tile(path)  # the tile at y, x = 384.., 384..
    img = open_image(path)
    np.testing.assert_array_equal(img.read((slice(None), slice(0, 384))), data[:, :384])
    np.testing.assert_array_equal(img.read((slice(None), slice(384, 512), slice(0, 384))), data[:, 384:, :384])
    with pytest.raises(ImageReadError, match="tiled.tif.*window read") as caught:
        img.read((slice(None), slice(400, 500), slice(400, 500)))
    # GDAL's own reason, not only rasterio's "See previous exception for details."
    assert "IReadBlock failed" in str(caught.value) or "TIFFRead" in str(caught.value)


def test_read_after_mask_returns_fresh_values(tmp_path):
    data = np.arange(2 * 12 * 12, dtype=np.uint16).reshape(2, 12, 12)
    img = open_image(write_geotiff(tmp_path / "r.tif", data, nodata=5))
    region = (slice(None), slice(0, 6), slice(0, 8))
    mask = img.read_mask(region)  # a sampler checks the mask first...
    assert not mask[0, 5] and mask.sum() == 47
    first = img.read(region)  # ...then reads the same patch
    np.testing.assert_array_equal(first, data[region])
    first[:] = 0
    np.testing.assert_array_equal(img.read(region), data[region])


def test_float_nan_without_nodata_tag_is_masked(tmp_path):
    data = np.ones((1, 4, 5), np.float32)
    data[0, 1, 2] = np.nan
    img = open_image(write_geotiff(tmp_path / "f.tif", data))
    assert img.meta["nodata"] is None
    expected = np.ones((4, 5), bool)
    expected[1, 2] = False
    np.testing.assert_array_equal(img.read_mask(), expected)
