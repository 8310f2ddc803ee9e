"""The library path (`load_csv`, `load_labeled`) checks CSV regions as the CLI path does.

A row asking y 64..128, x 0..999 of a 512² image used to come back silently clipped to
(1, 64, 512); reads clip regions, so it would then be stretched to the encoder's input.
"""

import numpy as np
import pytest

from domainssl.transfer.labeled import LabeledDataError, load_csv, load_labeled
from domainssl.transfer.preprocess import check_regions


def _with_regions(csv_path, regions):
    """Rewrite `csv_path` with y0,y1,x0,x1 columns: `regions[i]` for data row i ("" for none)."""
    lines = csv_path.read_text().splitlines()
    rows = [lines[0] + ",y0,y1,x0,x1"] + [f"{line},{regions.get(i, ',,,')}" for i, line in enumerate(lines[1:])]
    csv_path.write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("load", [load_csv, load_labeled, check_regions])
def test_a_region_outside_its_image_is_refused_naming_line_file_region_and_shape(tiff_csv, load):
    _with_regions(tiff_csv, {0: "0,16,0,16", 2: "4,12,0,999"})
    with pytest.raises(LabeledDataError) as err:
        load(tiff_csv)
    assert str(err.value) == (
        f"{tiff_csv}, line 4: region y0=4,y1=12,x0=0,x1=999 of {tiff_csv.parent / 'img/002.tif'}: x0=0, "
        "x1=999 is not inside the image's x axis of 16 pixels (need 0 <= x0 < x1 <= 16); the image is "
        "(2, 16, 16) (CYX). Fix the region columns (pixel indices, stop exclusive; leave both cells of an "
        "axis empty for the whole axis)")


def test_the_reviewers_case_a_row_past_a_512_image_is_refused_not_clipped(tmp_path):
    import tifffile

    for name in ("a", "b"):
        tifffile.imwrite(tmp_path / f"{name}.tif", np.zeros((512, 512), np.uint16))
    (tmp_path / "labels.csv").write_text("path,label,y0,y1,x0,x1\na.tif,x,64,128,0,999\nb.tif,y,,,,\n")
    with pytest.raises(LabeledDataError, match=r"labels.csv, line 2: region y0=64,y1=128,x0=0,x1=999 of "
                                               r".*a.tif: x0=0, x1=999 is not inside .* the image is "
                                               r"\(1, 512, 512\)"):
        load_labeled(tmp_path / "labels.csv")
    (tmp_path / "labels.csv").write_text("path,label,y0,y1,x0,x1\na.tif,x,64,128,0,512\nb.tif,y,,,,\n")
    assert load_labeled(tmp_path / "labels.csv").get_image(0).shape == (1, 64, 512)


def test_region_cells_that_are_not_integers_name_the_line(tiff_csv):
    _with_regions(tiff_csv, {3: "0,8,a,b"})
    with pytest.raises(LabeledDataError, match=rf"{tiff_csv}, line 5: region columns x0,x1 must be integers, "
                                               r"found 'a','b'"):
        load_csv(tiff_csv)


def test_regions_inside_their_images_load_and_crop(tiff_csv):
    _with_regions(tiff_csv, {0: "0,16,0,16", 1: "2,10,,8", 5: ",,4,12"})
    ds = load_csv(tiff_csv)
    assert [ds.get_image(i).shape for i in (0, 1, 2, 5)] == [(2, 16, 16), (2, 8, 8), (2, 16, 16), (2, 16, 8)]


def test_the_check_opens_each_image_once(tiff_csv, monkeypatch):
    # load_csv checks regions on the images it opens anyway: no second header read per file
    import domainssl.io as io_mod

    _with_regions(tiff_csv, {i: "0,8,0,8" for i in range(12)})
    opened, real = [], io_mod.open_image
    monkeypatch.setattr(io_mod, "open_image", lambda p, *a, **k: opened.append(p) or real(p, *a, **k))
    assert len(load_csv(tiff_csv)) == 12
    assert len(opened) == 12 and len(set(opened)) == 12
