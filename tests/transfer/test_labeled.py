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


def test_folder_per_class_and_generated_split(tmp_path, tiff_csv):
    import shutil

    root = tmp_path / "folder"
    for line in tiff_csv.read_text().splitlines()[1:]:
        path, label, _ = line.split(",")
        (root / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(tiff_csv.parent / path, root / label)
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
    ds = from_arrays(images, labels * 5 + 3)
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
