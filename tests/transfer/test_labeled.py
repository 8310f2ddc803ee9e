"""Labeled data: CSV (relative paths, split, regions), folder per class, arrays, stratified split."""

import numpy as np
import pytest

from domainssl.transfer.labeled import (LabeledDataError, from_arrays, load_csv, load_folder, load_labeled,
                                        stratified_split)


def test_csv_with_relative_paths_and_split(tiff_csv):
    ds = load_labeled(tiff_csv)
    assert len(ds) == 12 and ds.class_names == ["horizontal", "vertical"]
    assert ds.channel_names == ["ch0", "ch1"] and ds.spatial_dims == 2
    assert list(ds.indices("test")) == [0, 3, 6, 9]
    img = ds.get_image(0)
    assert img.shape == (2, 16, 16) and img.dtype == np.float32


def test_csv_region_columns_crop(tiff_csv):
    text = tiff_csv.read_text().splitlines()
    rows = [text[0] + ",y0,y1,x0,x1"] + [r + ",2,10,,8" for r in text[1:]]
    tiff_csv.write_text("\n".join(rows) + "\n")
    ds = load_csv(tiff_csv)
    assert ds.get_image(1).shape == (2, 8, 8)


def test_csv_errors_are_actionable(tmp_path, tiff_csv):
    bad = tmp_path / "bad.csv"
    bad.write_text("file,class\na.tif,x\n")
    with pytest.raises(LabeledDataError, match="path,label"):
        load_csv(bad)
    bad.write_text("path,label\nmissing.tif,x\n")
    with pytest.raises(LabeledDataError, match="missing.tif"):
        load_csv(bad)
    text = tiff_csv.read_text().replace(",test", ",holdout")
    tiff_csv.write_text(text)
    with pytest.raises(LabeledDataError, match="holdout"):
        load_csv(tiff_csv)


def _as_class_folders(tiff_csv, root):
    """The labels CSV's images copied into ROOT/<label>/ (the folder-per-class layout)."""
    import shutil

    for line in tiff_csv.read_text().splitlines()[1:]:
        path, label, _ = line.split(",")
        (root / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(tiff_csv.parent / path, root / label)
    return root


def test_folder_per_class_and_generated_split(tmp_path, tiff_csv):
    root = _as_class_folders(tiff_csv, tmp_path / "folder")
    ds = load_folder(root)
    assert ds.split is None and len(ds) == 12
    split = ds.with_split(0.5, seed=0).split
    for c in (0, 1):
        assert np.sum((ds.labels == c) & (split == "test")) == 3


def test_stratified_split_is_seeded_and_stratified():
    labels = np.array([0] * 70 + [1] * 30)
    a, b = stratified_split(labels, 0.3, 0), stratified_split(labels, 0.3, 0)
    assert (a == b).all()
    assert np.sum((labels == 1) & (a == "test")) == 9 and np.sum(a == "test") == 30
    assert not (stratified_split(labels, 0.3, 1) == a).all()


def test_from_arrays_maps_label_values(striped):
    images, labels = striped
    ds = from_arrays(images, labels * 5 + 3, spatial_dims=2)
    assert ds.class_names == ["3", "8"] and set(ds.labels) == {0, 1}
    with pytest.raises(LabeledDataError, match="labels of shape"):
        from_arrays(images, labels[:-1])


def test_shared_sets_follow_their_cards(shared_data):
    from domainssl.transfer.labeled_sets import load_coffee, load_jurkat, load_pneumoniamnist

    root = shared_data / "labeled"
    pn = load_pneumoniamnist(root)
    assert len(pn.indices("test")) == 624 and len(pn.indices("train")) == 4707
    jk = load_jurkat(root)
    assert jk.class_names == ["G1", "S", "G2", "M"] and int(np.sum(jk.labels == 3)) == 718
    assert len(jk.indices("test")) == 1026  # sklearn rounds the test share of 3418 up
    cf = load_coffee(root)
    assert len(cf) == 2876 and cf.get_image(0).shape == (3, 64, 64)
    assert int(np.sum(cf.labels == 0)) == 1438


# -- user-path checks: split, labels, encodings, stray files, channel order, spacing -------------


def test_csv_blank_split_cell_is_refused_naming_the_line(tiff_csv):
    lines = tiff_csv.read_text().splitlines()
    lines[4] = lines[4].rsplit(",", 1)[0] + ","  # line 5 of the file: split left blank
    tiff_csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabeledDataError, match=r"empty split on line 5 \(1 of 12 rows\).*train, val or test"):
        load_csv(tiff_csv)


def test_csv_with_one_class_is_refused(tiff_csv):
    text = tiff_csv.read_text().replace(",vertical", ",horizontal")
    tiff_csv.write_text(text)
    with pytest.raises(LabeledDataError, match=r"only class 'horizontal' \(12 images\).*at least 2 classes"):
        load_csv(tiff_csv)


def test_csv_empty_label_is_refused_naming_the_line(tiff_csv):
    lines = tiff_csv.read_text().splitlines()
    path, _, split = lines[2].split(",")
    lines[2] = f"{path}, ,{split}"
    tiff_csv.write_text("\n".join(lines + [",,"]) + "\n")  # a trailing row of empty cells is skipped
    with pytest.raises(LabeledDataError, match=r"empty label on line 3 \(1 of 12 rows\)"):
        load_csv(tiff_csv)


def test_label_name_makes_numbers_one_class():
    from domainssl.transfer.labeled import label_name

    assert [label_name(v) for v in ("1", "1.0", " 01 ", "+1", "1e0")] == ["1"] * 5
    assert [label_name(v) for v in ("0.50", "-2.0", "12345678901234567890")] == ["0.5", "-2", "12345678901234567890"]
    assert [label_name(v) for v in ("Tumor", " tumor ", "1a", "nan")] == ["Tumor", "tumor", "1a", "nan"]


def test_numeric_labels_are_one_class_per_value_in_numeric_order(tiff_csv):
    lines = tiff_csv.read_text().splitlines()
    values = ["1", "1.0", "10", "2", "2.0", " 01", "10.0", "2", "1", "10", "2.00", "1"]
    rows = [lines[0]] + [f"{ln.split(',')[0]},{v},{ln.split(',')[2]}" for ln, v in zip(lines[1:], values)]
    tiff_csv.write_text("\n".join(rows) + "\n")
    ds = load_csv(tiff_csv)
    assert ds.class_names == ["1", "2", "10"]
    assert list(ds.labels) == [0, 0, 2, 1, 1, 0, 2, 1, 0, 2, 1, 0]


def test_generated_split_names_a_class_with_one_image(tiff_csv):
    lines = tiff_csv.read_text().splitlines()
    rows = ["path,label"] + [ln.rsplit(",", 1)[0] for ln in lines[1:]]
    rows[5] = rows[5].split(",")[0] + ",rare"
    tiff_csv.write_text("\n".join(rows) + "\n")
    ds = load_csv(tiff_csv)
    assert ds.split is None and "rare" in ds.class_names
    with pytest.raises(LabeledDataError, match=r"class 'rare' \(1 image\) has fewer"):
        ds.with_split(0.3, seed=0)


def test_csv_saved_by_excel_with_byte_order_mark(tiff_csv):
    tiff_csv.write_bytes(b"\xef\xbb\xbf" + tiff_csv.read_text().replace("\n", "\r\n").encode())
    ds = load_csv(tiff_csv)
    assert len(ds) == 12 and ds.class_names == ["horizontal", "vertical"]
    assert list(ds.indices("test")) == [0, 3, 6, 9]


def test_folder_skips_files_that_are_not_images(tmp_path, tiff_csv):
    root = _as_class_folders(tiff_csv, tmp_path / "folder")
    (root / "horizontal" / "README.txt").write_text("scanned 2021")
    (root / "horizontal" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "vertical" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.warns(UserWarning, match=r"skipped 3 file\(s\) that are not images"):
        ds = load_folder(root)
    assert len(ds) == 12 and ds.info["skipped_files"] == 3
    assert ds.get_image(11).shape == (2, 16, 16)


def _geotiff(path, bands: dict, pixel: float = 10.0):
    """A small float32 GeoTIFF whose band descriptions are `bands`' keys (values: constant bands)."""
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=len(bands), dtype="float32",
                       crs="EPSG:32633", transform=from_origin(500000, 4000000, pixel, pixel)) as dst:
        for i, (name, value) in enumerate(bands.items(), start=1):
            dst.write(np.full((8, 8), value, np.float32), i)
            dst.set_band_description(i, name)
    return path


def _geo_csv(tmp_path, files):
    csv = tmp_path / "geo.csv"
    csv.write_text("path,label\n" + "".join(f"{f.name},{'ab'[i % 2]}\n" for i, f in enumerate(files)))
    return csv


def test_geotiff_bands_in_another_order_are_read_in_the_first_files_order(tmp_path):
    a = _geotiff(tmp_path / "a.tif", {"red": 1.0, "green": 2.0, "nir": 3.0})
    b = _geotiff(tmp_path / "b.tif", {"nir": 30.0, "red": 10.0, "green": 20.0})
    ds = load_csv(_geo_csv(tmp_path, [a, b]))
    assert ds.channel_names == ["red", "green", "nir"]
    assert ds.get_image(0)[:, 0, 0].tolist() == [1.0, 2.0, 3.0]
    assert ds.get_image(1)[:, 0, 0].tolist() == [10.0, 20.0, 30.0]


def test_geotiff_bands_with_other_names_are_refused(tmp_path):
    a = _geotiff(tmp_path / "a.tif", {"red": 1.0, "green": 2.0, "nir": 3.0})
    b = _geotiff(tmp_path / "b.tif", {"red": 1.0, "green": 2.0, "swir": 3.0})
    with pytest.raises(LabeledDataError, match=r"b.tif has channels \['red', 'green', 'swir'\].*a.tif has "
                                               r"\['red', 'green', 'nir'\]"):
        load_csv(_geo_csv(tmp_path, [a, b]))


def test_mixed_spacing_warns_naming_a_file_and_both_spacings(tmp_path):
    a = _geotiff(tmp_path / "a.tif", {"red": 1.0, "nir": 3.0}, pixel=10.0)
    b = _geotiff(tmp_path / "b.tif", {"red": 1.0, "nir": 3.0}, pixel=10.0)
    c = _geotiff(tmp_path / "c.tif", {"red": 1.0, "nir": 3.0}, pixel=20.0)
    with pytest.warns(UserWarning, match=r"1 of 3 labeled images .*/c.tif has 20 x 20 m, .*/a.tif has 10 x 10 m;"):
        ds = load_csv(_geo_csv(tmp_path, [a, b, c]))
    assert ds.spacing == [10.0, 10.0]


def test_csv_in_another_encoding_says_how_to_save_it(tiff_csv):
    tiff_csv.write_bytes(tiff_csv.read_text().replace("vertical", "verticalé").encode("latin-1"))
    with pytest.raises(LabeledDataError, match="not UTF-8 text .*save it as CSV UTF-8"):
        load_csv(tiff_csv)


def test_rows_naming_one_z_plane_of_a_volume_are_2d_slices(tmp_path):
    import nibabel as nib

    vol = np.arange(6 * 8 * 10, dtype=np.float32).reshape(10, 8, 6)       # nibabel order (x, y, z)
    nib.save(nib.Nifti1Image(vol, np.diag([0.5, 0.5, 3.0, 1.0])), str(tmp_path / "v.nii"))
    rows = ["path,label,z0,z1"] + [f"v.nii,{'ab'[z % 2]},{z},{z + 1}" for z in range(6)]
    (tmp_path / "slices.csv").write_text("\n".join(rows) + "\n")
    ds = load_csv(tmp_path / "slices.csv")
    assert ds.spatial_dims == 2 and ds.spacing == pytest.approx([0.5, 0.5]) and ds.units == ["mm", "mm"]
    img = ds.get_image(2)
    assert img.shape == (1, 8, 10)
    from domainssl.io import open_image

    full = open_image(str(tmp_path / "v.nii")).read((slice(None),) * 4)   # (1, Z, Y, X) in RAS
    np.testing.assert_array_equal(img, full[:, 2])
    # a region of several planes stays 3D
    (tmp_path / "slabs.csv").write_text("path,label,z0,z1\nv.nii,a,0,2\nv.nii,b,2,4\n")
    assert load_csv(tmp_path / "slabs.csv").spatial_dims == 3


def test_rows_cropping_one_volume_open_it_once(tmp_path, monkeypatch):
    # a CSV of many regions of one series read every slice header once per row (and repeated
    # its geometry warnings per row)
    import nibabel as nib

    import domainssl.io as io_mod
    from domainssl.transfer.preprocess import check_regions

    nib.save(nib.Nifti1Image(np.zeros((10, 8, 6), np.float32), np.eye(4)), str(tmp_path / "v.nii"))
    rows = ["path,label,z0,z1"] + [f"v.nii,{'ab'[z % 2]},{z},{z + 1}" for z in range(6)]
    (tmp_path / "slices.csv").write_text("\n".join(rows) + "\n")
    opened, real = [], io_mod.open_image
    monkeypatch.setattr(io_mod, "open_image", lambda p, *a, **k: opened.append(p) or real(p, *a, **k))
    assert len(load_csv(tmp_path / "slices.csv")) == 6 and len(opened) == 1
    assert check_regions(tmp_path / "slices.csv") == 6 and len(opened) == 2
