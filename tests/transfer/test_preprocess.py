"""Preprocessing checks: CSV regions against their images, and empty images refused clearly."""

from dataclasses import replace

import numpy as np
import pytest

from domainssl.transfer.card import read_card
from domainssl.transfer.labeled import LabeledDataError, load_csv
from domainssl.transfer.preprocess import check_regions, make_input_spec, prepare_inputs


def _with_regions(csv_path, regions):
    """Rewrite `csv_path` with y0,y1,x0,x1 columns: `regions[i]` for data row i ("" for none)."""
    lines = csv_path.read_text().splitlines()
    rows = [lines[0] + ",y0,y1,x0,x1"] + [f"{line},{regions.get(i, ',,,')}" for i, line in enumerate(lines[1:])]
    csv_path.write_text("\n".join(rows) + "\n")


def test_regions_inside_their_images_pass(tiff_csv):
    _with_regions(tiff_csv, {0: "0,16,0,16", 1: "2,10,,8", 5: ",,4,12"})
    assert check_regions(tiff_csv) == 3  # rows without a region are not opened


@pytest.mark.parametrize("region, message", [
    ("8,8,0,4", "y0=8, y1=8 is not inside the image's y axis of 16 pixels (need 0 <= y0 < y1 <= 16)"),
    ("0,4,12,17", "x0=12, x1=17 is not inside the image's x axis of 16 pixels (need 0 <= x0 < x1 <= 16)"),
    (",,40,", "x0=40, x1=16 is not inside"),
])
def test_regions_outside_their_images_name_line_file_region_and_shape(tiff_csv, region, message):
    _with_regions(tiff_csv, {2: region})
    with pytest.raises(LabeledDataError) as err:
        check_regions(tiff_csv)
    text = str(err.value)
    assert text.startswith(f"{tiff_csv}, line 4: region y0=")
    assert "img/002.tif" in text and message in text and "the image is (2, 16, 16) (CYX)" in text


def test_regions_of_a_csv_saved_with_a_byte_order_mark_are_checked(tiff_csv):
    # Excel's "CSV UTF-8": load_csv reads it, so the region check must read it too
    _with_regions(tiff_csv, {2: "0,4,12,17"})
    tiff_csv.write_bytes(b"\xef\xbb\xbf" + tiff_csv.read_bytes())
    with pytest.raises(LabeledDataError, match="x0=12, x1=17 is not inside"):
        check_regions(tiff_csv)


def test_empty_images_are_refused_before_any_resize(tiff_csv, encoder_dir):
    labeled = load_csv(tiff_csv)
    spec = make_input_spec(read_card(encoder_dir), labeled, check_values=False)
    real = labeled.get_image
    empty = replace(labeled, get_image=lambda i: real(i)[:, 20:] if i == 4 else real(i))
    with pytest.raises(LabeledDataError, match=r"item 4 \('horizontal'\) is empty, shape \(2, 0, 16\)"):
        prepare_inputs(empty, spec, progress=False)
    assert tuple(prepare_inputs(labeled, spec, progress=False).shape) == (12, 2, 16, 16)
    assert np.isfinite(prepare_inputs(labeled, spec, progress=False).numpy()).all()


def test_a_region_much_smaller_than_the_encoder_input_is_warned_about():
    # crop mode keeps the physical scale: a small region becomes mostly zero padding
    from domainssl.transfer.preprocess import InputSpec, to_input

    spec = InputSpec(channel_idx=(0,), channel_names=("x",), zoom=None, input_size=(16, 16),
                     resize="crop", normalise={"mode": "none"})
    small = np.ones((1, 6, 6), np.float32)
    with pytest.warns(UserWarning, match="fill less than half of the encoder's input"):
        out = to_input(small, spec)
    assert out.shape == (1, 16, 16) and float(out.sum()) == 36.0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_input(np.ones((1, 14, 14), np.float32), spec)   # 77 % filled: no warning


def test_crop_padding_is_zero_in_the_encoders_input_units():
    # CT windows map HU to [0, 1]; padding raw 0 HU (water) gave 0.4 in a 40/400 window. Padding
    # after normalisation is the window's low end, like air.
    from domainssl.transfer.preprocess import InputSpec, to_input

    spec = InputSpec(channel_idx=(0,), channel_names=("CT",), zoom=None, input_size=(8, 8),
                     resize="crop", normalise={"mode": "window", "windows": [[40.0, 400.0]]})
    hu = np.full((1, 6, 6), 40.0, np.float32)      # the window's level: 0.5 after normalisation
    out = to_input(hu, spec)                       # 56 % of the input filled: no padding warning
    assert out.shape == (1, 8, 8)
    assert float(out[0, 4, 4]) == pytest.approx(0.5) and float(out[0, 0, 0]) == 0.0
