"""Uncompressed tiled GeoTIFFs are opened with GTIFF_DIRECT_IO (a faster window read): the
values, masks and overviews must equal what rasterio reads with GDAL's defaults."""

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
from rasterio.windows import Window  # noqa: E402

from domainssl.io import geotiff  # noqa: E402
from domainssl.io.geotiff import open_geotiff  # noqa: E402
from raster_factory import write_geotiff  # noqa: E402


def _data(bands=4, height=300, width=333, seed=0) -> np.ndarray:
    """uint16 (bands, height, width) with nodata (0) holes in some bands only."""
    data = np.random.default_rng(seed).integers(1, 65535, (bands, height, width)).astype(np.uint16)
    data[0, 10:20, 30:45] = 0
    data[bands - 1, 290:300, 320:333] = 0  # a hole in the padded edge tiles
    return data


@pytest.fixture(params=["pixel", "band"])
def uncompressed_tiled(request, tmp_path, monkeypatch):
    """An uncompressed, 64² tiled file whose size is not a multiple of the tile (padded edge
    tiles), pixel- or band-interleaved, with two internal overview levels; the block cache
    rule is set to 16 KiB so that this 800 kB file (and its overviews) get direct IO."""
    monkeypatch.setattr(geotiff, "GDAL_CACHEMAX_BYTES", 16 * 1024)
    data = _data()
    path = write_geotiff(tmp_path / f"plain_{request.param}.tif", data, nodata=0, tiled=True,
                         blockxsize=64, blockysize=64, interleave=request.param)
    with rasterio.open(path, "r+") as ds:
        ds.build_overviews([2, 4])
    return path, data


REGIONS = [
    (slice(None), slice(0, 64), slice(0, 64)),          # one whole tile
    (slice(None), slice(37, 101), slice(50, 306)),       # across several tiles
    (slice(None), slice(236, 300), slice(269, 333)),     # the padded bottom-right tiles
    (slice(1, 3), slice(5, 261), slice(77, 333)),        # a band subset to the right edge
    (slice(3, 4), slice(280, 300), slice(0, 333)),       # the last band, a full-width strip
]


def test_direct_io_only_for_large_uncompressed_tiled_files(tmp_path):
    data = _data(bands=1, height=128, width=128)
    plain = write_geotiff(tmp_path / "plain.tif", data, tiled=True, blockxsize=64, blockysize=64)
    packed = write_geotiff(tmp_path / "deflate.tif", data, tiled=True, blockxsize=64, blockysize=64,
                           compress="deflate")
    striped = write_geotiff(tmp_path / "striped.tif", data)
    layouts = {p.name: (open_geotiff(p).meta["tiled"], open_geotiff(p).meta["compress"])
               for p in (plain, packed, striped)}
    assert layouts == {"plain.tif": (True, None), "deflate.tif": (True, "deflate"),
                       "striped.tif": (False, None)}
    big, cached = geotiff.GDAL_CACHEMAX_BYTES + 1, geotiff.GDAL_CACHEMAX_BYTES
    assert geotiff.read_options(*layouts["plain.tif"], big) == {"GTIFF_DIRECT_IO": "YES"}
    # a file the block cache can hold reads faster through it
    assert geotiff.read_options(*layouts["plain.tif"], cached) == {}
    assert geotiff.read_options(*layouts["deflate.tif"], big) == {}
    assert geotiff.read_options(*layouts["striped.tif"], big) == {}
    assert open_geotiff(plain)._infos[0].nbytes == 128 * 128 * 2


def test_read_handles_are_opened_with_the_read_options(uncompressed_tiled, monkeypatch):
    path, _ = uncompressed_tiled
    img = open_geotiff(path)
    seen = []
    real_env = geotiff._env

    def recording_env(**options):
        seen.append(options)
        return real_env(**options)

    monkeypatch.setattr(geotiff, "_env", recording_env)
    # full-resolution reads take the direct tile reader and open no GDAL handle
    img.read((slice(None), slice(0, 8), slice(0, 8)))
    assert img._tiles[0] is not None and seen == []
    img._dataset(0)  # the handle kept for GDAL mask bands
    assert seen == [{"GTIFF_DIRECT_IO": "YES"}]
    overview = open_geotiff(path, level=1)
    seen.clear()
    overview.read((slice(None), slice(0, 8), slice(0, 8)))  # overviews: GDAL
    assert seen == [{"GTIFF_DIRECT_IO": "YES"}]


@pytest.mark.parametrize("region", REGIONS)
def test_values_and_mask_equal_default_gdal_reads(uncompressed_tiled, region):
    path, data = uncompressed_tiled
    img = open_geotiff(path)
    c, y, x = region
    got = img.read(region)
    np.testing.assert_array_equal(got, data[region])
    with rasterio.open(path) as ds:  # GDAL defaults, outside any Env of ours
        bands = list(range(1, 5))[c]
        ref = ds.read(bands, window=Window(x.start, y.start, x.stop - x.start, y.stop - y.start))
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(img.read_mask(region), (data[region] != 0).all(axis=0))


@pytest.mark.parametrize("level", [1, 2])
def test_overview_levels_equal_default_gdal_reads(uncompressed_tiled, level):
    path, _ = uncompressed_tiled
    img = open_geotiff(path, level=level)
    with rasterio.open(path, overview_level=level - 1) as ds:
        ref = ds.read()
    np.testing.assert_array_equal(img.read(), ref)
    h, w = ref.shape[1:]
    np.testing.assert_array_equal(img.read((slice(1, 4), slice(h // 3, h), slice(w // 2, w))),
                                  ref[1:4, h // 3:, w // 2:])
