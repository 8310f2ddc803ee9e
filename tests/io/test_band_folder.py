"""Band folders: one GeoTIFF per band of a scene (Sentinel-2, Landsat) read as one image."""

import json
from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from domainssl.io import ImageReadError, open_image  # noqa: E402
from domainssl.io.band_folder import band_files, band_name, is_band_folder, open_band_folder  # noqa: E402
from domainssl.io.scan import read_manifest, scan_archive  # noqa: E402
from raster_factory import write_geotiff  # noqa: E402


@pytest.mark.parametrize("filename, band", [
    ("B02.tif", "B02"), ("b8a.TIF", "B8A"), ("T29RKH_20200219T112111_B8A_20m.tif", "B8A"),
    ("LC08_L2SP_042034_20200101_02_T1_SR_B4.TIF", "B4"), ("B12.tiff", "B12"),
    ("TCI.tif", None), ("SCL.tif", None), ("B02_mask.tif", None), ("B02.jp2", None), ("AB02.tif", None),
    ("LC08_L2SP_042034_20200101_02_T1_ST_B10.TIF", "B10"), ("sub-01_dwi_b0.tif", None), ("B13.tif", None),
    ("LE07_L1TP_042034_20020101_20200917_02_T1_B6_VCID_1.TIF", "B6_VCID_1"),
    ("LE07_L1TP_042034_20020101_20200917_02_T1_B6_VCID_2.TIF", "B6_VCID_2"), ("B6_VCID_3.tif", None),
])
def test_band_name(filename, band):
    assert band_name(filename) == band


def _scene(folder, *, extra=True):
    """A 2-resolution scene: B02 and B04 at 10 m (8x8), B8A and B05 at 20 m (4x4), plus TCI/SCL.
    Returns {band: array as written}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {"B02": rng.integers(1, 5000, (1, 8, 8), dtype=np.uint16),
              "B04": rng.integers(1, 5000, (1, 8, 8), dtype=np.uint16),
              "B8A": np.full((1, 4, 4), 3000, dtype=np.uint16),   # constant: exact after bilinear
              "B05": np.full((1, 4, 4), 1200, dtype=np.uint16)}
    for band, data in arrays.items():
        write_geotiff(folder / f"{band}.tif", data, pixel=10.0 if data.shape[1] == 8 else 20.0, nodata=0)
    if extra:
        write_geotiff(folder / "TCI.tif", rng.integers(0, 255, (3, 8, 8), dtype=np.uint8))
        write_geotiff(folder / "SCL.tif", np.full((1, 4, 4), 4, dtype=np.uint8), pixel=20.0)
    return arrays


def test_band_folder_opens_as_one_image_on_the_finest_grid(tmp_path):
    arrays = _scene(tmp_path / "scene")
    image = open_image(tmp_path / "scene")
    # spectral order (B05 before B8A), named by band, finest grid (10 m), the folder as its path
    assert image.channel_names == ["B02", "B04", "B05", "B8A"]
    assert image.shape == (4, 8, 8) and image.spacing == (10.0, 10.0) and image.units == ("m", "m")
    assert image.path == str(tmp_path / "scene") and image.format == "geotiff"
    assert image.meta["resample"] == "bilinear" and len(image.meta["files"]) == 4
    data = image.read()
    np.testing.assert_array_equal(data[0], arrays["B02"][0])
    np.testing.assert_array_equal(data[1], arrays["B04"][0])
    np.testing.assert_array_equal(data[2], 1200)
    np.testing.assert_array_equal(data[3], 3000)
    window = image.read((slice(1, 3), slice(2, 6), slice(0, 3)))
    np.testing.assert_array_equal(window, data[1:3, 2:6, 0:3])


def test_band_selection_and_errors(tmp_path):
    _scene(tmp_path / "scene", extra=False)
    image = open_band_folder(tmp_path / "scene", bands=["b04", "B02"])
    assert image.channel_names == ["B04", "B02"] and image.shape == (2, 8, 8)
    with pytest.raises(ImageReadError, match=r"bands \['B11'\] not in the folder"):
        open_band_folder(tmp_path / "scene", bands=["B11"])
    one = tmp_path / "one"
    one.mkdir()
    write_geotiff(one / "B02.tif", np.ones((1, 4, 4), dtype=np.uint16))
    assert not is_band_folder(one) and band_files(one) == []  # one band file is just an image


def test_scan_makes_one_record_of_a_band_folder(tmp_path):
    _scene(tmp_path / "archive" / "scene")
    summary = scan_archive(tmp_path / "archive", tmp_path / "m.jsonl", jobs=0)
    records = {r["path"].split("archive/")[1]: r for r in read_manifest(tmp_path / "m.jsonl")}
    # the band files are one image (the folder); true colour and scene classes stay their own
    assert sorted(records) == ["scene", "scene/SCL.tif", "scene/TCI.tif"] and summary.ok == 3
    stack = records["scene"]
    assert stack["channel_names"] == ["B02", "B04", "B05", "B8A"] and stack["shape"] == [4, 8, 8]
    from domainssl.data.dataset import open_record

    assert open_record(stack).read().shape == (4, 8, 8)


def test_real_sentinel2_cogs_match_the_derived_12_band_file(shared_data):
    # MANIFEST: the 12 bands of the per-band COGs (100/200/600 m) on one 200 m grid
    folder = shared_data / "geotiff" / "s2_l2a_T29RKH_20200219_cogs"
    stack = open_image(folder)
    derived = open_image(shared_data / "geotiff" / "s2_l2a_T29RKH_20200219_12band_200m_cog.tif")
    assert stack.channel_names == derived.channel_names  # B01..B08, B8A, B09, B11, B12
    assert stack.shape == (12, 1098, 1098) and stack.spacing == (100.0, 100.0)
    # the same 20 km square: 200 px of the stack at 100 m, 100 px of the derived file at 200 m
    # the folder's STAC item says reflectance = DN x 1e-4 (+ 0: processing baseline 02.14)
    assert stack.meta["value_unit"] == "reflectance" and stack.meta["source"]["processing_baseline"] == "02.14"
    assert stack.dtype == np.float32 and derived.dtype == np.uint16
    a = stack.read((slice(None), slice(400, 600), slice(400, 600))).astype(np.float64)
    b = derived.read((slice(None), slice(200, 300), slice(200, 300))).astype(np.float64) * 1e-4
    np.testing.assert_allclose(a.mean(axis=(1, 2)), b.mean(axis=(1, 2)), rtol=0.005)
    # a 100 m band is read as stored, scaled
    with rasterio.open(folder / "B02.tif") as ds:
        np.testing.assert_allclose(a[1], ds.read(1)[400:600, 400:600] * 1e-4, rtol=1e-6)
    # the sentinel2_mae recipe's bands are exactly this folder's
    from domainssl.train.recipe import load_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "sentinel2_mae.yaml")
    assert recipe["data"]["channels"] == stack.channel_names


def _ramp_scene(folder, coarse_origin=(500000.0, 4000000.0), coarse_crs="EPSG:32633"):
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:16, 0:16]
    write_geotiff(folder / "B02.tif", (1000 + 7 * x + 3 * y)[None].astype(np.uint16), pixel=10.0, nodata=0)
    y, x = np.mgrid[0:8, 0:8]
    write_geotiff(folder / "B05.tif", (2000 + 40 * x + 20 * y)[None].astype(np.uint16), pixel=20.0,
                  nodata=0, origin=coarse_origin, crs=coarse_crs)


def test_coarse_bands_read_by_scaled_windows_equal_the_warped_bands(tmp_path):
    # Axis-aligned coarser bands are read as a scaled window (no WarpedVRT): same values as
    # GDAL's warp onto the fine grid, and a window equals the same part of a full read.
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    _ramp_scene(tmp_path / "scene")
    image = open_image(tmp_path / "scene")
    assert image._scaled == [False, True]
    full = image.read()
    with rasterio.open(tmp_path / "scene" / "B02.tif") as ref, \
            rasterio.open(tmp_path / "scene" / "B05.tif") as src, \
            WarpedVRT(src, crs=ref.crs, transform=ref.transform, width=ref.width, height=ref.height,
                      resampling=Resampling.bilinear) as warped:
        np.testing.assert_array_equal(full[1], warped.read(1))
    assert full[1, 0, 0] == 2000 and full[1, 15, 15] == 2000 + 40 * 7 + 20 * 7  # corners as stored
    np.testing.assert_array_equal(image.read((slice(1, 2), slice(3, 9), slice(5, 12))), full[1:2, 3:9, 5:12])


def test_a_coarse_band_that_covers_part_of_the_scene_is_nodata_elsewhere(tmp_path):
    # B05 starts 80 m east of B02: the first 8 columns of the fine grid have no B05 data
    _ramp_scene(tmp_path / "scene", coarse_origin=(500080.0, 4000000.0))
    image = open_image(tmp_path / "scene")
    assert image._scaled == [False, True]
    data, valid = image.read(), image.read_mask()
    assert (data[1, :, :8] == 0).all() and not valid[:, :8].any()
    assert valid[:, 9:].all() and data[1, 0, 8] == 2000


def test_a_band_in_another_crs_is_warped(tmp_path):
    _ramp_scene(tmp_path / "scene", coarse_origin=(499990.0, 3600000.0), coarse_crs="EPSG:32632")
    image = open_image(tmp_path / "scene")
    assert image._scaled == [False, False] and image._resampled == [False, True]
    assert image.read().shape == (2, 16, 16)


def _stac_item(folder, offset, hrefs=("B02.tif", "B8A.tif")):
    assets = {name.split(".")[0].lower(): {
        "href": f"https://example.org/tiles/{name}", "roles": ["data", "reflectance"],
        "raster:bands": [{"nodata": 0, "scale": 0.0001, "offset": offset}]} for name in hrefs}
    assets["thumbnail"] = {"href": "https://example.org/tiles/preview.jpg", "roles": ["thumbnail"]}
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "S2B_T1_20230101", "assets": assets,
            "properties": {"datetime": "2023-01-01T10:00:00Z", "s2:processing_baseline": "05.09"}}
    (folder / "S2B_T1_20230101.json").write_text(json.dumps(item))


def test_a_stac_item_beside_the_bands_gives_their_scale_and_offset(tmp_path):
    # Since processing baseline 04.00 Sentinel-2 L2A reflectance is DN x 1e-4 - 0.1, and only the
    # STAC item says so: read as DN, a 2023 scene is 1000 brighter than a 2021 one
    arrays = _scene(tmp_path / "scene", extra=False)
    (tmp_path / "scene" / "notes.json").write_text("[1, 2]")  # other JSON is ignored
    _stac_item(tmp_path / "scene", offset=-0.1)
    image = open_image(tmp_path / "scene")
    # the item lists B02 and B8A (of B02, B04, B05, B8A): the others keep their digital numbers
    assert image.dtype == np.float32 and image.meta["value_unit"] == ["reflectance", None, None, "reflectance"]
    assert image.meta["source"] == {"stac_item": "S2B_T1_20230101.json", "id": "S2B_T1_20230101",
                                    "datetime": "2023-01-01T10:00:00Z", "processing_baseline": "05.09"}
    data = image.read()
    np.testing.assert_allclose(data[0], arrays["B02"][0] * 1e-4 - 0.1, atol=1e-6)
    np.testing.assert_allclose(data[3], 3000 * 1e-4 - 0.1, atol=1e-6)         # B8A, resampled
    np.testing.assert_array_equal(data[1], arrays["B04"][0].astype(np.float32))  # not in the item
    assert image.read_mask().all()


def test_a_stac_item_that_names_other_files_changes_nothing(tmp_path):
    _scene(tmp_path / "scene", extra=False)
    _stac_item(tmp_path / "scene", offset=-0.1, hrefs=("B02.jp2",))
    image = open_image(tmp_path / "scene")
    assert image.dtype == np.uint16 and "source" not in image.meta and "value_unit" not in image.meta


def test_folders_that_are_not_one_scene_keep_their_files_as_images(tmp_path):
    # two scenes in one folder (two files of band B2), and a well plate's TIFFs named B01.tif,
    # B02.tif (not georeferenced): neither is a band folder, every file is scanned on its own
    import tifffile

    scenes = tmp_path / "archive" / "scenes"
    scenes.mkdir(parents=True)
    for scene in ("LC08_A", "LC08_B"):
        for band in ("B2", "B3"):
            write_geotiff(scenes / f"{scene}_SR_{band}.TIF", np.ones((1, 8, 8), dtype=np.uint16))
    plate = tmp_path / "archive" / "plate"
    plate.mkdir()
    for well in ("A01", "B01", "B02"):
        tifffile.imwrite(plate / f"{well}.tif", np.zeros((16, 16), dtype=np.uint16))
    assert not is_band_folder(scenes) and not is_band_folder(plate)
    scan_archive(tmp_path / "archive", tmp_path / "m.jsonl", jobs=0)
    records = read_manifest(tmp_path / "m.jsonl", status=None)
    assert sorted(r["path"].split("archive/")[1] for r in records) == [
        "plate/A01.tif", "plate/B01.tif", "plate/B02.tif", "scenes/LC08_A_SR_B2.TIF", "scenes/LC08_A_SR_B3.TIF",
        "scenes/LC08_B_SR_B2.TIF", "scenes/LC08_B_SR_B3.TIF"]
    assert all(r["status"] == "ok" and r["shape"][0] == 1 for r in records)
    with pytest.raises(ImageReadError, match="not a band folder"):
        open_band_folder(scenes)


def test_nodata_in_a_coarse_band_keeps_its_footprint(tmp_path):
    # a 120 m nodata hole in a 60 m band over a 10 m grid: the fine pixels whose centres lie in
    # it are nodata (GDAL's resampled read alone would interpolate into the hole: 36 of 144)
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    scene = tmp_path / "scene"
    scene.mkdir()
    write_geotiff(scene / "B02.tif", np.ones((1, 120, 120), dtype=np.uint16), pixel=10.0, nodata=0)
    coarse = np.full((1, 20, 20), 500, dtype=np.uint16)
    coarse[0, 8:10, 8:10] = 0
    write_geotiff(scene / "B01.tif", coarse, pixel=60.0, nodata=0)
    image = open_image(scene)
    assert image.channel_names == ["B01", "B02"] and image._scaled == [True, False]
    region = (slice(None), slice(40, 80), slice(40, 80))
    data, valid = image.read(region), image.read_mask(region)
    assert (data[0] == 0).sum() == 144 and (~valid).sum() == 144
    assert (data[0, 8:20, 8:20] == 0).all()          # fine rows/cols 48..59: the hole
    with rasterio.open(scene / "B02.tif") as ref, rasterio.open(scene / "B01.tif") as src, \
            WarpedVRT(src, crs=ref.crs, transform=ref.transform, width=120, height=120,
                      resampling=Resampling.bilinear) as warped:
        np.testing.assert_array_equal(data[0] == 0, warped.read(1)[40:80, 40:80] == 0)


def test_a_lone_panchromatic_band_does_not_set_the_grid(tmp_path):
    # Landsat Collection 2 level 1: B1-B7 at 30 m, B8 (panchromatic) alone at 15 m
    scene = tmp_path / "LC08_L1TP"
    scene.mkdir()
    for band in ("B2", "B3", "B4"):
        write_geotiff(scene / f"LC08_L1TP_042034_20200101_{band}.TIF", np.full((1, 8, 8), 7000, np.uint16), pixel=30.0)
    write_geotiff(scene / "LC08_L1TP_042034_20200101_B8.TIF", np.full((1, 16, 16), 9000, np.uint16), pixel=15.0)
    image = open_image(scene)
    assert image.channel_names == ["B2", "B3", "B4", "B8"]
    assert image.spacing == (30.0, 30.0) and image.shape == (4, 8, 8)
    np.testing.assert_array_equal(image.read()[3], 9000)


def test_edge_cases_of_the_grid_and_of_nodata(tmp_path):
    # (a) a float band with NaN nodata is warped (GDAL's resampled read spreads NaN into valid
    # neighbours); (b) a band ending half a fine pixel short leaves the pixel centred on its edge
    # empty; (c) in degrees, the pixel areas (~1e-10) still tell the shared grid from a pan band
    scene = tmp_path / "a"
    scene.mkdir()
    write_geotiff(scene / "B02.tif", np.ones((1, 12, 12), np.float32), pixel=10.0)
    nan_band = np.full((1, 2, 2), 0.5, np.float32)
    nan_band[0, 0, 0] = np.nan
    write_geotiff(scene / "B01.tif", nan_band, pixel=60.0, nodata=float("nan"))
    image = open_image(scene)
    assert image._scaled == [False, False] and image._resampled == [True, False]
    valid = image.read_mask()
    assert not valid[:6, :6].any() and valid[6:, :].all() and valid[:, 6:].all()

    scene = tmp_path / "b"
    scene.mkdir()
    write_geotiff(scene / "B02.tif", np.ones((1, 12, 12), np.uint16), pixel=10.0, nodata=0)
    write_geotiff(scene / "B05.tif", np.full((1, 6, 6), 500, np.uint16), pixel=20.0, nodata=0,
                  origin=(500000.0 - 5.0, 4000000.0 + 5.0))  # ends at x = 500115: col 11's centre
    image = open_image(scene)
    assert image._scaled == [False, True]
    data, valid = image.read(), image.read_mask()
    assert (data[1, :, 11] == 0).all() and not valid[:, 11].any() and valid[:11, :11].all()

    scene = tmp_path / "c"
    scene.mkdir()
    for band in ("B2", "B3"):
        write_geotiff(scene / f"L_{band}.TIF", np.ones((1, 8, 8), np.uint16), crs="EPSG:4326",
                      pixel=1.8e-5, origin=(10.0, 50.0))
    write_geotiff(scene / "L_B8.TIF", np.ones((1, 32, 32), np.uint16), crs="EPSG:4326", pixel=4.5e-6,
                  origin=(10.0, 50.0))
    image = open_image(scene)
    assert image.shape == (3, 8, 8) and image.spacing == pytest.approx((1.8e-5, 1.8e-5))


def test_a_broken_band_rejects_the_scene_naming_the_file(tmp_path):
    # not three one-band images the recipe would then train on: one scene, rejected with its reason
    _scene(tmp_path / "archive" / "scene", extra=False)
    (tmp_path / "archive" / "scene" / "B04.tif").write_bytes(b"")
    with pytest.raises(ImageReadError, match="B04.tif"):
        open_image(tmp_path / "archive" / "scene")
    scan_archive(tmp_path / "archive", tmp_path / "m.jsonl", jobs=0)
    (record,) = read_manifest(tmp_path / "m.jsonl", status=None)
    assert record["path"].endswith("scene") and record["status"] == "rejected" and "B04.tif" in record["reason"]


def test_landsat7_thermal_gains_are_two_bands_in_order(tmp_path):
    # ETM+ Level-1 scenes hold the thermal band twice (low and high gain): one scene, not two
    scene = tmp_path / "LE07_L1TP_042034_20020101_20200917_02_T1"
    scene.mkdir()
    stem = scene.name
    for band, value in [("B7", 7), ("B6_VCID_2", 62), ("B5", 5), ("B6_VCID_1", 61)]:
        write_geotiff(scene / f"{stem}_{band}.TIF", np.full((1, 4, 4), value, dtype=np.uint8), pixel=30.0)
    assert [b for b, _ in band_files(scene)] == ["B5", "B6_VCID_1", "B6_VCID_2", "B7"]
    image = open_image(scene)
    assert image.channel_names == ["B5", "B6_VCID_1", "B6_VCID_2", "B7"]
    assert image.read()[:, 0, 0].tolist() == [5, 61, 62, 7]


def test_reopening_a_band_folder_reads_the_band_headers_once(tmp_path, monkeypatch):
    # a worker reopens a folder whenever it leaves its open-image cache: the GeoTIFF check of
    # each band file is remembered while the file is unchanged
    import os

    from domainssl.io import open as open_mod

    _scene(tmp_path / "scene", extra=False)
    checked = []
    real = open_mod.is_geotiff
    monkeypatch.setattr(open_mod, "is_geotiff", lambda p: checked.append(os.path.basename(p)) or real(p))
    first = band_files(tmp_path / "scene")
    assert band_files(tmp_path / "scene") == first and len(checked) == 4
    b02 = tmp_path / "scene" / "B02.tif"
    os.utime(b02, ns=(b02.stat().st_atime_ns, b02.stat().st_mtime_ns + 10**9))   # rewritten
    band_files(tmp_path / "scene")
    assert checked.count("B02.tif") == 2 and len(checked) == 5
