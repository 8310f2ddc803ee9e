"""TIFF / OME-TIFF reader: real microscopy files plus generated pyramids, time series, corrupt files."""

import pickle

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile")

from domainssl.io import ImageReadError, open_image  # noqa: E402
from domainssl.io.tiff import normalize_unit, open_tiff  # noqa: E402
from raster_factory import corrupt_last_tile, truncate_copy  # noqa: E402

NEUBIAS_Z = 0.4994126016284111
NEUBIAS_XY = 0.5118778700352326


@pytest.fixture(scope="module")
def micro(shared_data):
    return shared_data / "microscopy"


def test_neubias_zcyx_becomes_czyx(micro):
    path = micro / "neubias" / "xyzc_16bit__dna_conf_wf.tif"
    img = open_image(path)
    assert img.format == "tiff" and img.axes == "CZYX"
    assert img.shape == (2, 45, 130, 133)
    assert img.meta["source_axes"] == "ZCYX" and img.meta["spacing_source"] == "imagej"
    assert img.spacing == pytest.approx((0.499, 0.512, 0.512), abs=1e-3)
    assert img.units == ("µm", "µm", "µm")
    assert img.channel_names == ["ch0", "ch1"]
    ref = tifffile.imread(path).transpose(1, 0, 2, 3)
    region = (slice(1, 2), slice(3, 40, 3), slice(10, 100), slice(5, 77))
    np.testing.assert_array_equal(img.read(region), ref[region])
    np.testing.assert_array_equal(img.read(), ref)
    assert img.read((slice(0, 1), slice(20, 21), slice(64, 65), slice(70, 71)))[0, 0, 0, 0] == ref[0, 20, 64, 70]


def test_hela_yxs_samples_become_channels(micro):
    path = micro / "hela_cells_imagej" / "hela-cells.tif"
    img = open_image(path)
    assert img.axes == "CYX" and img.shape == (3, 512, 672) and img.meta["source_axes"] == "YXS"
    assert img.channel_names == ["ch0", "ch1", "ch2"]
    assert img.units == ("µm", "µm") and img.spacing == pytest.approx((0.0514931, 0.0514931), rel=1e-5)
    ref = tifffile.imread(path).transpose(2, 0, 1)
    np.testing.assert_array_equal(img.read((slice(1, 3), slice(5, 50), slice(100, 200))), ref[1:3, 5:50, 100:200])
    np.testing.assert_array_equal(img.read((slice(2, 3),)), ref[2:3])


def test_ome_tiff_channel_names_and_physical_sizes(micro):
    img = open_image(micro / "converted" / "neubias_dna_conf_wf_czyx.ome.tif")
    assert img.meta["kind"] == "ome" and img.meta["spacing_source"] == "ome"
    assert img.shape == (2, 45, 130, 133)
    assert img.channel_names == ["DNA_confocal", "DNA_widefield"]
    assert img.spacing == pytest.approx((NEUBIAS_Z, NEUBIAS_XY, NEUBIAS_XY))
    assert img.units == ("µm", "µm", "µm")
    # same pixels as the ImageJ original it was converted from
    orig = open_image(micro / "neubias" / "xyzc_16bit__dna_conf_wf.tif")
    region = (slice(None), slice(10, 30), slice(60, 130), slice(0, 50))
    np.testing.assert_array_equal(img.read(region), orig.read(region))


def test_ome_tiff_without_physical_size_is_pixels(micro):
    img = open_image(micro / "converted" / "bbbc022_IXMtest_A02_s9_cyx.ome.tif")
    assert img.shape == (3, 395, 695) and img.channel_names == ["w1", "w2", "w3"]
    assert img.spacing == (1.0, 1.0) and img.units == ("px", "px")
    np.testing.assert_array_equal(img.read(), tifffile.imread(micro / "bbbc022_cellpainting_crop" / "IXMtest_A02_s9.tif"))


def test_zyx_stack_gets_one_channel(micro):
    img = open_image(micro / "neubias" / "xyz_calibrated_16bit__golgi_bfa.tif")
    assert img.shape == (1, 25, 137, 147) and img.axes == "CZYX"
    assert img.spacing[0] == pytest.approx(0.3876) and img.units[0] == "µm"
    ref = tifffile.imread(micro / "neubias" / "xyz_calibrated_16bit__golgi_bfa.tif")
    np.testing.assert_array_equal(img.read((slice(None), slice(5, 9)))[0], ref[5:9])


def test_pyramid_levels_tiled(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4000, (2, 300, 260), dtype=np.uint16)
    path = tmp_path / "pyr.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(data, subifds=2, tile=(64, 64), compression="zlib",
                 metadata={"axes": "CYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25,
                           "Channel": {"Name": ["DAPI", "GFP"]}})
        for factor in (2, 4):
            tw.write(data[:, ::factor, ::factor], subfiletype=1, tile=(64, 64), compression="zlib")
    for level, factor in enumerate((1, 2, 4)):
        img = open_image(path, level=level)
        assert img.meta["levels"] == 3 and img.meta["tiled"]
        assert img.shape == (2, 300 // factor, 260 // factor)
        assert img.spacing == pytest.approx((0.25 * factor, 0.25 * factor))
        assert img.channel_names == ["DAPI", "GFP"]
        expected = data[:, ::factor, ::factor]
        np.testing.assert_array_equal(img.read((slice(1, 2), slice(10, 50), slice(3, 70))), expected[1:2, 10:50, 3:70])
    with pytest.raises(ImageReadError, match="3 pyramid level"):
        open_image(path, level=3)


def test_time_axis_needs_an_index(tmp_path):
    data = np.random.default_rng(1).integers(0, 255, (3, 2, 4, 20, 30), dtype=np.uint8)
    path = tmp_path / "t.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "TCZYX"})
    with pytest.raises(ImageReadError, match="3 time points.*t=<index>"):
        open_image(path)
    img = open_image(path, t=2)
    assert img.shape == (2, 4, 20, 30) and img.meta["t"] == 2
    np.testing.assert_array_equal(img.read(), data[2])
    with pytest.raises(ImageReadError, match="out of range"):
        open_tiff(path, t=3)


def test_series_choice(tmp_path):
    a = np.full((5, 6), 7, np.uint16)
    b = np.arange(2 * 8 * 9, dtype=np.uint16).reshape(2, 8, 9)
    path = tmp_path / "two.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(a, metadata={"axes": "YX"})
        tw.write(b, metadata={"axes": "CYX"})
    first = open_image(path)
    assert first.shape == (1, 5, 6) and first.meta["n_series"] == 2
    second = open_image(path, series="1")
    assert second.shape == (2, 8, 9)
    np.testing.assert_array_equal(second.read(), b)
    with pytest.raises(ImageReadError, match="2 series"):
        open_image(path, series=2)


def test_plain_page_stack_is_z(tmp_path):
    data = np.arange(6 * 10 * 12, dtype=np.uint16).reshape(6, 10, 12)
    path = tmp_path / "stack.tif"
    with tifffile.TiffWriter(path) as tw:
        for plane in data:  # separate pages without shape metadata, as many instruments write
            tw.write(plane, metadata=None, contiguous=False)
    img = open_image(path)
    assert img.axes == "CZYX" and img.shape == (1, 6, 10, 12)
    np.testing.assert_array_equal(img.read((slice(None), slice(2, 5)))[0], data[2:5])


def test_truncated_tiff_raises(tmp_path, micro):
    for src, fraction in [(micro / "neubias" / "xyzc_16bit__dna_conf_wf.tif", 0.5),
                          (micro / "converted" / "neubias_dna_conf_wf_czyx.ome.tif", 0.5),
                          (micro / "hela_cells_imagej" / "hela-cells.tif", 0.9)]:
        cut = truncate_copy(src, tmp_path / f"cut_{src.name}", fraction)
        with pytest.raises(ImageReadError, match=f"cut_{src.name}.*(truncated|corrupt)"):
            open_tiff(cut).read()


def test_not_a_tiff_and_missing(tmp_path):
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"this is not a tiff at all" * 10)
    with pytest.raises(ImageReadError, match="junk.tif"):
        open_tiff(junk)
    with pytest.raises(ImageReadError, match="no such file"):
        open_tiff(tmp_path / "missing.tif")


def test_pickle_round_trip(micro):
    img = open_image(micro / "neubias" / "xyzc_16bit__spots.tif")
    before = img.read((slice(None), slice(0, 3)))
    clone = pickle.loads(pickle.dumps(img))
    assert clone._array is None
    np.testing.assert_array_equal(clone.read((slice(None), slice(0, 3))), before)


def test_normalize_unit():
    assert normalize_unit("micron") == "µm"
    assert normalize_unit("\\u00B5m") == "µm"
    assert normalize_unit("micrometer") == "µm"
    assert normalize_unit("nanometer") == "nm"
    assert normalize_unit("") is None


def test_channels_times_samples(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, (2, 20, 30, 3), dtype=np.uint8)
    path = tmp_path / "cs.ome.tif"
    tifffile.imwrite(path, data, ome=True, photometric="rgb",
                     metadata={"axes": "CYXS", "Channel": {"Name": ["day1", "day2"]}})
    img = open_image(path)
    assert img.meta["source_axes"] == "CYXS" and img.shape == (6, 20, 30)
    assert img.channel_names == ["day1_0", "day1_1", "day1_2", "day2_0", "day2_1", "day2_2"]
    ref = data.transpose(0, 3, 1, 2).reshape(6, 20, 30)  # channel k = c * 3 + sample
    np.testing.assert_array_equal(img.read(), ref)
    np.testing.assert_array_equal(img.read((slice(2, 5), slice(3, 9))), ref[2:5, 3:9])
    np.testing.assert_array_equal(img.read((slice(1, 6, 2),)), ref[1:6:2])


def test_tiled_reads_decode_only_needed_tiles(tmp_path):
    data = np.arange(256 * 256, dtype=np.uint16).reshape(256, 256)
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, data, tile=(64, 64), compression="zlib")
    corrupt_last_tile(path)  # the tile at y, x = 192.., 192..
    img = open_tiff(path)
    np.testing.assert_array_equal(img.read((slice(None), slice(0, 192), slice(0, 256)))[0], data[:192])
    np.testing.assert_array_equal(img.read((slice(None), slice(192, 256), slice(0, 192)))[0], data[192:, :192])
    with pytest.raises(ImageReadError, match="tiled.tif.*(truncated|corrupt)"):
        img.read()
