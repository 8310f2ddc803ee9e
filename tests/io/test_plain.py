"""PNG/JPEG/BMP reader: a real coffee-scenes JPEG and generated edge cases."""

import pickle

import numpy as np
import pytest
from PIL import Image

from domainssl.io import ImageReadError, open_image
from domainssl.io.plain import open_plain
from raster_factory import truncate_copy


def test_coffee_scene_jpeg(shared_data):
    path = shared_data / "labeled" / "brazilian_coffee_scenes" / "images" / "arceburgo.T1024.B1088.L2624.R2688.jpg"
    img = open_image(path)
    assert img.format == "plain" and img.axes == "CYX"
    assert img.shape == (3, 64, 64) and img.channel_names == ["R", "G", "B"]
    assert img.spacing == (1.0, 1.0) and img.units == ("px", "px") and img.dtype == np.uint8
    ref = np.asarray(Image.open(path)).transpose(2, 0, 1)
    np.testing.assert_array_equal(img.read(), ref)
    np.testing.assert_array_equal(img.read((slice(1, 3), slice(10, 40), slice(5, 64, 3))), ref[1:3, 10:40, 5:64:3])
    assert img.read_mask() is None
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(img)).read(), ref)


@pytest.mark.parametrize("suffix", ["png", "bmp"])
def test_grey_and_colour_lossless(tmp_path, suffix):
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / f"c.{suffix}")
    Image.fromarray(rgb[..., 0]).save(tmp_path / f"g.{suffix}")
    colour, grey = open_image(tmp_path / f"c.{suffix}"), open_image(tmp_path / f"g.{suffix}")
    assert colour.shape == (3, 20, 30) and grey.shape == (1, 20, 30) and grey.channel_names == ["L"]
    np.testing.assert_array_equal(colour.read(), rgb.transpose(2, 0, 1))
    np.testing.assert_array_equal(grey.read((slice(None), slice(3, 9), slice(4, 30)))[0], rgb[3:9, 4:30, 0])


def test_16bit_png_and_palette(tmp_path):
    deep = (np.arange(12 * 15, dtype=np.uint16).reshape(12, 15) * 300)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    img = open_image(tmp_path / "deep.png")
    assert img.dtype == np.uint16 and img.shape == (1, 12, 15)
    np.testing.assert_array_equal(img.read()[0], deep)
    pal = Image.fromarray(np.array([[0, 1], [1, 2]], dtype=np.uint8), mode="P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    pal.save(tmp_path / "pal.png")
    p = open_image(tmp_path / "pal.png")
    assert p.channel_names == ["R", "G", "B"] and p.meta["pil_mode"] == "P"
    np.testing.assert_array_equal(p.read()[:, 1, 1], [0, 0, 255])


def test_broken_files(tmp_path, shared_data):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageReadError, match="junk.png"):
        open_plain(junk)
    src = shared_data / "microscopy" / "stardist_nuclei" / "histo.jpg"
    cut = truncate_copy(src, tmp_path / "cut.jpg", 0.3)
    with pytest.raises(ImageReadError, match="cut.jpg: truncated JPEG"):
        open_plain(cut)
    noise = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "ok.png")
    cut_png = truncate_copy(tmp_path / "ok.png", tmp_path / "cut.png", 0.8)
    with pytest.raises(ImageReadError, match="cut.png: truncated or corrupt PNG"):
        open_image(cut_png)
    with pytest.raises(ImageReadError, match="no such file"):
        open_plain(tmp_path / "none.jpg")
