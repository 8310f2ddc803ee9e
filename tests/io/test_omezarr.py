"""OME-Zarr reader: the real NGFF 0.4 conversion, an NGFF 0.5 (zarr v3) copy written here, edge cases."""

import copy
import json
import pickle

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from domainssl.io import ImageReadError, open_image  # noqa: E402
from domainssl.io.omezarr import open_ome_zarr  # noqa: E402

NEUBIAS_Z = 0.4994126016284111
NEUBIAS_XY = 0.5118778700352326


@pytest.fixture(scope="module")
def ngff04(shared_data):
    return shared_data / "microscopy" / "converted" / "neubias_dna_conf_wf.ome.zarr"


@pytest.fixture(scope="module")
def ngff05(ngff04, tmp_path_factory):
    """An NGFF 0.5 copy (zarr v3, level 0 sharded) of the 0.4 image, written with zarr's own API."""
    src = zarr.open_group(ngff04, mode="r")
    attrs = dict(src.attrs)
    multiscales = copy.deepcopy(attrs["multiscales"])
    for ms in multiscales:
        ms.pop("version", None)  # 0.5 keeps the version once, under "ome"
    out = tmp_path_factory.mktemp("ngff05") / "neubias.ome.zarr"
    root = zarr.open_group(out, mode="w", zarr_format=3)
    for i, ds in enumerate(multiscales[0]["datasets"]):
        level = src[ds["path"]]
        extra = {"shards": (1, 1, 128, 128)} if i == 0 else {}
        arr = root.create_array(ds["path"], shape=level.shape, dtype=level.dtype,
                                chunks=(1, 1, 32, 32) if i == 0 else level.chunks,
                                dimension_names=["c", "z", "y", "x"], **extra)
        arr[...] = level[...]
    root.attrs["ome"] = {"version": "0.5", "multiscales": multiscales, "omero": attrs["omero"]}
    return out


def test_ngff04_levels_and_labels(ngff04):
    img = open_image(ngff04)
    assert img.format == "ome-zarr" and img.meta["ngff_version"] == "0.4" and img.meta["zarr_format"] == 2
    assert img.axes == "CZYX" and img.shape == (2, 45, 130, 133)
    assert img.channel_names == ["DNA_confocal", "DNA_widefield"]
    assert img.spacing == pytest.approx((NEUBIAS_Z, NEUBIAS_XY, NEUBIAS_XY))
    assert img.units == ("µm", "µm", "µm")
    assert img.meta["levels"] == 3 and img.meta["level_paths"] == ["s0", "s1", "s2"]
    lvl1 = open_image(ngff04, level=1)
    assert lvl1.shape == (2, 45, 65, 66)
    assert lvl1.spacing == pytest.approx((NEUBIAS_Z, 1.023755740070465, 1.0315114653740292))
    assert open_image(ngff04, level=2).shape == (2, 45, 32, 33)
    with pytest.raises(ImageReadError, match="3 level"):
        open_image(ngff04, level=3)


def test_ngff04_equals_ome_tiff(ngff04, shared_data):
    tif = open_image(shared_data / "microscopy" / "converted" / "neubias_dna_conf_wf_czyx.ome.tif")
    img = open_image(ngff04)
    np.testing.assert_array_equal(img.read(), tif.read())
    region = (slice(1, 2), slice(3, 20, 2), slice(60, 130), slice(0, 70))
    np.testing.assert_array_equal(img.read(region), tif.read(region))


def test_ngff05_reads_back_equal_to_ngff04(ngff04, ngff05):
    assert json.loads((ngff05 / "zarr.json").read_text())["attributes"]["ome"]["version"] == "0.5"
    for level in range(3):
        a, b = open_image(ngff04, level=level), open_image(ngff05, level=level)
        assert b.meta["ngff_version"] == "0.5" and b.meta["zarr_format"] == 3
        assert (b.shape, b.axes, b.spacing, b.units, b.channel_names, b.dtype) == \
               (a.shape, a.axes, a.spacing, a.units, a.channel_names, a.dtype)
        np.testing.assert_array_equal(b.read(), a.read())
        assert b.channels_apart or level > 0  # level 0 was written with a chunk per channel
    region = (slice(0, 2), slice(10, 12), slice(33, 120), slice(64, 133))
    np.testing.assert_array_equal(open_image(ngff05).read(region), open_image(ngff04).read(region))


def test_file_url_and_pickle(ngff04):
    url = ngff04.resolve().as_uri()
    assert url.startswith("file://")
    img = open_image(url, level=1)
    assert img.shape == (2, 45, 65, 66) and img.channel_names == ["DNA_confocal", "DNA_widefield"]
    clone = pickle.loads(pickle.dumps(img))
    region = (slice(None), slice(4, 6), slice(0, 40), slice(20, 66))
    np.testing.assert_array_equal(clone.read(region), open_image(ngff04, level=1).read(region))


def _write_ngff04(path, data, axes, scale, omero=None):
    """A one-level NGFF 0.4 image on zarr v2 with the given axes (list of (name, type, unit))."""
    root = zarr.open_group(path, mode="w", zarr_format=2)
    arr = root.create_array("0", shape=data.shape, dtype=data.dtype, chunks=data.shape)
    arr[...] = data
    root.attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": n, "type": t, **({"unit": u} if u else {})} for n, t, u in axes],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
    }]
    if omero is not None:
        root.attrs["omero"] = omero
    return path


def test_time_axis_and_no_omero(tmp_path):
    data = np.arange(3 * 2 * 4 * 5 * 6, dtype=np.uint16).reshape(3, 2, 4, 5, 6)
    path = _write_ngff04(tmp_path / "t.ome.zarr", data,
                         [("t", "time", "second"), ("c", "channel", None), ("z", "space", "nanometer"),
                          ("y", "space", "nanometer"), ("x", "space", "nanometer")],
                         [1.0, 1.0, 300.0, 65.0, 65.0])
    with pytest.raises(ImageReadError, match="3 time points.*t=<index>"):
        open_image(path)
    img = open_image(path, t=1)
    assert img.shape == (2, 4, 5, 6) and img.channel_names == ["ch0", "ch1"]
    assert img.spacing == (300.0, 65.0, 65.0) and img.units == ("nm", "nm", "nm")
    np.testing.assert_array_equal(img.read(), data[1])
    np.testing.assert_array_equal(img.read((slice(1, 2), slice(2, 4))), data[1, 1:2, 2:4])
    with pytest.raises(ImageReadError, match="out of range"):
        open_ome_zarr(path, t=3)


def test_yx_image_without_channel_axis(tmp_path):
    data = np.random.default_rng(0).random((7, 9)).astype(np.float32)
    path = _write_ngff04(tmp_path / "yx.ome.zarr", data, [("y", "space", None), ("x", "space", None)],
                         [2.0, 3.0], omero={"channels": [{"label": "phase"}]})
    img = open_image(path)
    assert img.axes == "CYX" and img.shape == (1, 7, 9) and img.channel_names == ["phase"]
    assert img.spacing == (2.0, 3.0) and img.units == ("px", "px")
    np.testing.assert_array_equal(img.read()[0], data)


def test_reads_only_the_chunks_a_region_needs(tmp_path):
    data = np.arange(4 * 64 * 64, dtype=np.uint16).reshape(4, 64, 64)
    root = zarr.open_group(tmp_path / "c.ome.zarr", mode="w", zarr_format=3)
    arr = root.create_array("0", shape=data.shape, dtype=data.dtype, chunks=(1, 32, 32))
    arr[...] = data
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}]}]}
    # corrupt the chunk (c=3, y=1, x=1): a region away from it must still read, a full read must fail
    chunk = tmp_path / "c.ome.zarr" / "0" / "c" / "3" / "1" / "1"
    assert chunk.is_file()
    chunk.write_bytes(b"garbage")
    img = open_image(tmp_path / "c.ome.zarr")
    assert img.channels_apart  # a chunk per channel: chosen channels are read apart (data.channels)
    np.testing.assert_array_equal(img.read((slice(0, 4), slice(0, 32), slice(0, 64))), data[:, :32])
    with pytest.raises(ImageReadError, match="c.ome.zarr"):
        img.read()


def test_bad_metadata_errors(tmp_path):
    plain = zarr.open_group(tmp_path / "plain.zarr", mode="w", zarr_format=3)
    plain.create_array("0", shape=(4, 4), dtype="u1")
    with pytest.raises(ImageReadError, match="no OME-NGFF 'multiscales'"):
        open_image(tmp_path / "plain.zarr")
    bad = zarr.open_group(tmp_path / "bad.zarr", mode="w", zarr_format=2)
    bad.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
                                 "datasets": [{"path": "missing"}]}]
    with pytest.raises(ImageReadError, match="'missing' is missing"):
        open_image(tmp_path / "bad.zarr")
    with pytest.raises(ImageReadError, match="no such OME-Zarr"):
        open_ome_zarr(tmp_path / "nothing.zarr")


def test_readers_work_in_a_spawned_worker(ngff04, shared_data, tmp_path):
    """DataLoader spawn workers get pickled images and must reopen their files lazily."""
    import multiprocessing
    from operator import methodcaller

    images = [
        open_image(ngff04, level=1),
        open_image(ngff04.resolve().as_uri()),
        open_image(shared_data / "microscopy" / "converted" / "neubias_dna_conf_wf_czyx.ome.tif"),
        open_image(shared_data / "geotiff" / "s2_l2a_T29RKH_20200219_12band_200m_cog.tif"),
        open_image(shared_data / "labeled" / "brazilian_coffee_scenes" / "images"
                   / "arceburgo.T1024.B1088.L2624.R2688.jpg"),
    ]
    for img in images:  # handles opened in the parent must not travel
        img.read((slice(0, 1),) + (slice(0, 8),) * img.spatial_dims)
    region = (slice(0, 1), slice(0, 16), slice(0, 16))
    read = methodcaller("read", region)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        blocks = pool.map(read, images)
    for img, block in zip(images, blocks):
        np.testing.assert_array_equal(block, img.read(region))
