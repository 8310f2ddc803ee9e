"""`load_labels` / `load_shared_set`: which sets take --test-fraction / --split-seed, and a warning
where a set's own split makes them not apply."""

import warnings

import numpy as np
import pytest

from domainssl.transfer.labeled import LabeledDataWarning
from domainssl.transfer.labeled_sets import load_labels, load_shared_set


def _no_warnings(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kw)


def test_jurkat_split_follows_the_test_fraction_and_seed(shared_data, monkeypatch):
    monkeypatch.setenv("DOMAINSSL_SHARED_DATA", str(shared_data))
    default = _no_warnings(load_labels, "shared:jurkat")
    assert len(default.indices("test")) == 1026 and default.info["split_rule"].startswith("stratified 70%/30%, seed 0")
    half = _no_warnings(load_labels, "shared:jurkat", 0.5, 3)  # were ignored: 1026 test images again
    assert len(half.indices("test")) == 1709 and half.info["split_rule"].startswith("stratified 50%/50%, seed 3")
    other_seed = _no_warnings(load_labels, "shared:jurkat", 0.3, 1)
    assert len(other_seed.indices("test")) == 1026 and not np.array_equal(other_seed.split, default.split)
    assert np.array_equal(load_shared_set("jurkat", split_seed=1).split, other_seed.split)


def test_coffee_split_follows_the_test_fraction_and_seed(shared_data, monkeypatch):
    monkeypatch.setenv("DOMAINSSL_SHARED_DATA", str(shared_data))
    cf = _no_warnings(load_labels, "shared:coffee", 0.2, 5)
    assert len(cf.indices("test")) == 576  # ceil(0.2 * 2876); 863 with the 70/30 default
    assert cf.info["split_rule"] == "stratified 80%/20%, seed 5"


def test_pneumoniamnist_keeps_its_official_split_and_says_so(shared_data, monkeypatch):
    monkeypatch.setenv("DOMAINSSL_SHARED_DATA", str(shared_data))
    pn = _no_warnings(load_labels, "shared:pneumoniamnist")  # defaults: nothing to warn about
    with pytest.warns(LabeledDataWarning) as record:
        again = load_labels("shared:pneumoniamnist", 0.5, 2)
    assert [str(w.message) for w in record] == [
        "shared:pneumoniamnist keeps its official train/val/test split; the test fraction 0.5 (--test-fraction) "
        "and split seed 2 (--split-seed) do not apply"]
    assert np.array_equal(again.split, pn.split) and len(again.indices("test")) == 624


def test_a_csv_with_a_split_column_warns_that_the_options_do_not_apply(tiff_csv):
    base = _no_warnings(load_labels, tiff_csv)
    with pytest.warns(LabeledDataWarning, match=r"labels.csv keeps its own split \(a split column or train/test "
                                                r"folders\); the split seed 4 \(--split-seed\) does not "
                                                r"apply"):
        labeled = load_labels(tiff_csv, 0.3, 4)
    assert np.array_equal(labeled.split, base.split)


def test_a_csv_without_split_column_takes_them(tiff_csv):
    tiff_csv.write_text("\n".join(line.rsplit(",", 1)[0] for line in tiff_csv.read_text().splitlines()) + "\n")
    labeled = _no_warnings(load_labels, tiff_csv, 0.5, 1)
    assert len(labeled.indices("test")) == 6 and len(labeled.indices("train")) == 6
    assert not np.array_equal(labeled.split, _no_warnings(load_labels, tiff_csv, 0.5, 2).split)
