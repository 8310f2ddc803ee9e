"""The direct tile reader (`tiff_tiles.TileIndex`) of uncompressed tiled GeoTIFFs larger than
GDAL's block cache: it is taken for exactly those files, and every read (values, masks, band
subsets, padded edge tiles, sparse tiles, big-endian files) equals what rasterio reads with
GDAL's defaults."""

import pickle

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
tifffile = pytest.importorskip("tifffile")
from rasterio.windows import Window  # noqa: E402

from domainssl.io import geotiff  # noqa: E402
from domainssl.io.geotiff import open_geotiff  # noqa: E402
from raster_factory import write_geotiff  # noqa: E402

TILE = 32


@pytest.fixture(autouse=True)
def small_block_cache(monkeypatch):
    """Every test file here counts as larger than the block cache (1 KiB), as a 2 GiB file does."""
    monkeypatch.setattr(geotiff, "GDAL_CACHEMAX_BYTES", 1024)


def _data(dtype, bands=3, height=100, width=131, seed=0) -> np.ndarray:
    """(bands, height, width) random values spanning `dtype`'s range (not a tile multiple)."""
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(0, 1000, (bands, height, width)).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, (bands, height, width), endpoint=True).astype(dtype)


def _windows(height, width, n=25, seed=1):
    """Random (y0, y1, x0, x1) windows, plus the whole image and the bottom-right corner."""
    rng = np.random.default_rng(seed)
    out = [(0, height, 0, width), (height - 5, height, width - 7, width), (31, 33, 0, 1)]
    for _ in range(n):
        y0, x0 = rng.integers(0, height), rng.integers(0, width)
        out.append((y0, rng.integers(y0 + 1, height + 1), x0, rng.integers(x0 + 1, width + 1)))
    return out


def _check_equal_to_rasterio(path, img, bands_slices=(slice(None), slice(1, 2), slice(1, 3))):
    h, w = img.shape[1:]
    with rasterio.open(path) as ds:  # GDAL defaults, outside any Env of ours
        for i, (y0, y1, x0, x1) in enumerate(_windows(h, w)):
            c = bands_slices[i % len(bands_slices)]
            bands = list(range(1, ds.count + 1))[c]
            ref = ds.read(bands, window=Window(x0, y0, x1 - x0, y1 - y0))
            got = img.read((c, slice(y0, y1), slice(x0, x1)))
            assert got.dtype == ref.dtype
            np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("interleave", ["pixel", "band"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_fast_path_reads_equal_rasterio(tmp_path, interleave, dtype):
    data = _data(dtype)
    path = write_geotiff(tmp_path / "t.tif", data, tiled=True, blockxsize=TILE, blockysize=TILE,
                         interleave=interleave)
    img = open_geotiff(path)
    tiles = img._tiles[0]
    assert tiles is not None and tiles.planar == (interleave == "band")
    _check_equal_to_rasterio(path, img)
    np.testing.assert_array_equal(img.read(), data)


@pytest.mark.parametrize("interleave", ["pixel", "band"])
def test_big_endian_file(tmp_path, interleave):
    data = _data("int16")
    path = write_geotiff(tmp_path / "be.tif", data, tiled=True, blockxsize=TILE, blockysize=TILE,
                         interleave=interleave, endianness="BIG")
    with tifffile.TiffFile(path) as tif:
        assert tif.byteorder == ">"
    img = open_geotiff(path)
    assert img._tiles[0] is not None
    _check_equal_to_rasterio(path, img)
    np.testing.assert_array_equal(img.read(), data)


@pytest.mark.parametrize("interleave", ["pixel", "band"])
@pytest.mark.parametrize("nodata", [None, 7])
def test_sparse_tiles_read_as_gdal_fills_them(tmp_path, interleave, nodata):
    """Tiles never written have offset 0: GDAL reads them as nodata, else 0."""
    data = _data("uint16")
    path = tmp_path / "sparse.tif"
    from affine import Affine

    kwargs = dict(driver="GTiff", width=131, height=100, count=3, dtype="uint16", tiled=True,
                  crs="EPSG:32633", transform=Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0),
                  blockxsize=TILE, blockysize=TILE, interleave=interleave, sparse_ok=True)
    if nodata is not None:
        kwargs["nodata"] = nodata
    with rasterio.open(path, "w", **kwargs) as ds:
        ds.write(data[:, 40:90, 50:120], window=Window(50, 40, 70, 50))
    with tifffile.TiffFile(path) as tif:
        assert 0 in tif.pages[0].dataoffsets and tif.pages[0].dataoffsets[-1] == 0
    img = open_geotiff(path)
    assert img._tiles[0] is not None
    _check_equal_to_rasterio(path, img)
    with rasterio.open(path) as ds:
        ref = ds.read()
        np.testing.assert_array_equal(img.read(), ref)
        if nodata is not None:
            np.testing.assert_array_equal(img.read_mask(), (ref != nodata).all(axis=0))
    assert ref[0, 0, 0] == (nodata or 0)


def test_nodata_mask_unchanged(tmp_path):
    data = _data("uint16")
    data[0, 10:20, 30:45] = 0
    data[2, 95:100, 120:131] = 0  # in the padded edge tile
    path = write_geotiff(tmp_path / "nd.tif", data, nodata=0, tiled=True, blockxsize=TILE,
                         blockysize=TILE)
    img = open_geotiff(path)
    assert img._tiles[0] is not None
    for y0, y1, x0, x1 in _windows(100, 131):
        region = (slice(None), slice(y0, y1), slice(x0, x1))
        np.testing.assert_array_equal(img.read(region), data[region])
        np.testing.assert_array_equal(img.read_mask(region), (data[region] != 0).all(axis=0))


def test_scale_offset_unchanged(tmp_path):
    data = _data("int16", bands=2)
    path = write_geotiff(tmp_path / "so.tif", data, tiled=True, blockxsize=TILE, blockysize=TILE,
                         scales=[0.5, 2.0], offsets=[1.0, -3.0])
    img = open_geotiff(path)
    assert img._tiles[0] is not None
    want = data.astype(np.float32) * np.float32([0.5, 2.0])[:, None, None] + np.float32([1.0, -3.0])[:, None, None]
    np.testing.assert_array_equal(img.read(), want)


def test_stack_of_mixed_dtypes(tmp_path):
    a = write_geotiff(tmp_path / "a.tif", _data("uint8", bands=1), tiled=True, blockxsize=TILE,
                      blockysize=TILE)
    b = write_geotiff(tmp_path / "b.tif", _data("uint16", bands=2, seed=3), tiled=True,
                      blockxsize=TILE, blockysize=TILE)
    img = open_geotiff([a, b])
    assert all(t is not None for t in img._tiles) and img.dtype == np.uint16
    region = (slice(None), slice(20, 90), slice(33, 131))
    want = np.concatenate([_data("uint8", bands=1), _data("uint16", bands=2, seed=3)])[region]
    np.testing.assert_array_equal(img.read(region), want)


def test_fast_path_only_for_uncompressed_tiled_full_resolution(tmp_path):
    data = _data("uint16", bands=2)
    tiled = dict(tiled=True, blockxsize=TILE, blockysize=TILE)
    plain = write_geotiff(tmp_path / "plain.tif", data, **tiled)
    packed = write_geotiff(tmp_path / "deflate.tif", data, compress="deflate", **tiled)
    striped = write_geotiff(tmp_path / "striped.tif", data)
    with rasterio.open(plain, "r+") as ds:
        ds.build_overviews([2])
    assert open_geotiff(plain)._tiles[0] is not None
    assert open_geotiff(packed)._tiles == [None]
    assert open_geotiff(striped)._tiles == [None]
    with pytest.MonkeyPatch.context() as mp:  # a file the block cache holds reads through it
        mp.setattr(geotiff, "GDAL_CACHEMAX_BYTES", data.nbytes)
        assert open_geotiff(plain)._tiles == [None]
        np.testing.assert_array_equal(open_geotiff(plain).read(), data)
    level1 = open_geotiff(plain, level=1)
    assert level1._tiles == [None]
    with rasterio.open(plain, overview_level=0) as ds:
        np.testing.assert_array_equal(level1.read(), ds.read())
    for path in (packed, striped):
        np.testing.assert_array_equal(open_geotiff(path).read(), data)


def test_pickled_reader_reopens_its_file(tmp_path):
    data = _data("uint16")
    path = write_geotiff(tmp_path / "p.tif", data, tiled=True, blockxsize=TILE, blockysize=TILE)
    img = open_geotiff(path)
    region = (slice(0, 2), slice(5, 70), slice(60, 131))
    first = img.read(region)
    clone = pickle.loads(pickle.dumps(img))
    assert clone._tiles[0]._fd is None
    np.testing.assert_array_equal(clone.read(region), first)
    np.testing.assert_array_equal(first, data[region])
    img.close()
    assert img._tiles[0]._fd is None
    np.testing.assert_array_equal(img.read(region), first)  # reopens after close
    clone.close()
    img.close()
