"""Invalid pixels (NaN, inf, a reader's nodata) reach the encoder as they reached it in pretraining.

Pretraining views fill them with the value that normalises to 0 (`Normaliser.fill_values`);
transfer used to turn NaN into raw 0 before normalising (-5 sigma under zscore) and never read
a file's nodata mask, so a GeoTIFF with nodata=0 reached the encoder as raw 0.
"""

import numpy as np
import pytest
import torch

from domainssl.transfer.labeled import load_csv
from domainssl.transfer.preprocess import InputSpec, labeled_stats, prepare_inputs, to_input

STATS = {"channel_names": ["a", "b"], "mean": [100.0, 90.0], "std": [20.0, 40.0],
         "p01": [50.0, 10.0], "p99": [150.0, 170.0]}
NO_AUGMENTATION = {"flip_p": 0.0, "rot90_p": 0.0, "jitter_p": 0.0, "channel_dropout_p": 0.0,
                   "noise_p": 0.0, "blur_p": 0.0}


def _view(image, normalise, names, stats, mask=None):
    """The pretraining view of `image` (C, Y, X) without augmentation: whole patch, same size."""
    from domainssl.transforms import build_views

    size = list(image.shape[1:])
    gen = build_views("multispectral", "single", 2, channel_names=names, stats=stats,
                      overrides={**NO_AUGMENTATION, "normalise": normalise,
                                 "global": {"size": size, "scale": [1.0, 1.0], "ratio": [1.0, 1.0]}})
    sample = {"image": image.copy(), "channel_names": names}
    if mask is not None:
        sample["mask"] = mask
    return gen(sample)["views"][0]


def _spec(names, normalise, stats, size, resize="resize"):
    return InputSpec(tuple(range(len(names))), tuple(names), None, tuple(size), resize, normalise, stats)


@pytest.mark.parametrize("normalise", [
    {"mode": "zscore"},
    {"mode": "stats_range"},
    {"mode": "percentile", "low": 1.0, "high": 99.0},
    {"mode": "window", "windows": [[40.0, 400.0], [-600.0, 1500.0]]},
], ids=lambda n: n["mode"])
@pytest.mark.parametrize("resize", ["resize", "crop"])
def test_nan_pixels_get_the_values_of_a_pretraining_view(normalise, resize):
    rng = np.random.default_rng(0)
    image = rng.normal(100, 20, (2, 16, 16)).astype(np.float32)
    image[:, 2:6, 3:9] = np.nan
    image[1, 10, 10] = np.inf            # one channel non-finite: the pixel is invalid in all
    view = _view(image, normalise, ["a", "b"], STATS)
    out = to_input(image, _spec(["a", "b"], normalise, STATS, (16, 16), resize))
    torch.testing.assert_close(out, view, rtol=0, atol=0)
    # the filled pixels are 0 in the encoder's units (the old code: zscore -5, -2.25)
    assert out[:, 3, 4].tolist() == pytest.approx([0.0] * out.shape[0], abs=1e-6)
    assert out[:, 10, 10].tolist() == pytest.approx([0.0] * out.shape[0], abs=1e-6)
    if normalise["mode"] == "zscore":   # valid pixels as before: (x - mean) / std
        assert float(out[0, 0, 0]) == pytest.approx((image[0, 0, 0] - 100.0) / 20.0, rel=1e-6)


def test_a_mask_marks_nodata_as_in_the_pretraining_views():
    rng = np.random.default_rng(1)
    image = rng.normal(100, 20, (2, 12, 12)).astype(np.float32)
    image[:, :4] = 0.0                   # a nodata value that is a number
    mask = np.ones((12, 12), bool)
    mask[:4] = False
    view = _view(image, {"mode": "zscore"}, ["a", "b"], STATS, mask=mask)
    out = to_input(image, _spec(["a", "b"], {"mode": "zscore"}, STATS, (12, 12)), mask=mask)
    torch.testing.assert_close(out, view, rtol=0, atol=0)
    assert float(out[0, 0, 0]) == 0.0 and float(out[1, 0, 0]) == 0.0
    with pytest.raises(ValueError, match=r"mask of shape \(12, 11\)"):
        to_input(image, _spec(["a", "b"], {"mode": "zscore"}, STATS, (12, 12)), mask=mask[:, 1:])


def _nodata_geotiff(path, values: np.ndarray):
    """A uint16 GeoTIFF, bands "a", "b", nodata 0."""
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=values.shape[2], height=values.shape[1], count=2,
                       dtype="uint16", nodata=0, crs="EPSG:32633",
                       transform=from_origin(500000, 4000000, 10.0, 10.0)) as dst:
        dst.write(values)
        for i, name in enumerate(("a", "b"), start=1):
            dst.set_band_description(i, name)
    return path


def test_geotiff_nodata_reaches_the_encoder_as_in_pretraining(tmp_path):
    from domainssl.io import open_image

    rng = np.random.default_rng(2)
    values = rng.integers(60, 140, (2, 16, 16)).astype(np.uint16)
    values[:, :, :5] = 0                 # a scene edge: nodata
    _nodata_geotiff(tmp_path / "x.tif", values)
    _nodata_geotiff(tmp_path / "y.tif", values[:, ::-1].copy())
    (tmp_path / "labels.csv").write_text("path,label\nx.tif,p\ny.tif,q\n")
    labeled = load_csv(tmp_path / "labels.csv")

    raw = labeled.get_image(0)
    assert np.isnan(raw[:, :, :5]).all() and np.array_equal(raw[:, :, 5:], values[:, :, 5:])
    image = open_image(str(tmp_path / "x.tif"))
    view = _view(image.read().astype(np.float32), {"mode": "zscore"}, ["a", "b"], STATS,
                 mask=image.read_mask())
    spec = _spec(["a", "b"], {"mode": "zscore"}, STATS, (16, 16))
    out = prepare_inputs(labeled, spec, progress=False)[0]
    torch.testing.assert_close(out, view, rtol=0, atol=0)
    # nodata is 0 in the encoder's units, not raw 0 normalised: (0 - 100) / 20 = -5
    assert out[:, :, :5].abs().max().item() == 0.0
    # statistics of the labeled data (normalization="data") leave nodata out, as the archive's do
    stats = labeled_stats(labeled, [0], [0, 1], ["a", "b"])
    assert stats["mean"] == pytest.approx(values[:, :, 5:].reshape(2, -1).mean(1), rel=1e-6)


def test_real_landsat_nodata_reaches_the_encoder_as_in_pretraining(shared_data, tmp_path):
    # Landsat 7 RGB subset, nodata 0 outside the rotated scene; a 64² region on the scene's edge
    from domainssl.io import open_image

    path = shared_data / "geotiff" / "landsat" / "rasterio_RGB.byte.tif"
    rows = [f"{path},edge,96,160,96,160", f"{path},inside,300,364,300,364"]
    (tmp_path / "labels.csv").write_text("path,label,y0,y1,x0,x1\n" + "\n".join(rows) + "\n")
    labeled = load_csv(tmp_path / "labels.csv")
    names = ["B1", "B2", "B3"]
    stats = {"channel_names": names, "mean": [60.0, 55.0, 50.0], "std": [25.0, 20.0, 30.0]}

    image = open_image(str(path))
    region = (slice(None), slice(96, 160), slice(96, 160))
    mask = image.read_mask(region)
    assert 0.3 < mask.mean() < 0.7                       # the region holds nodata and scene
    view = _view(image.read(region).astype(np.float32), {"mode": "zscore"}, names, stats, mask=mask)
    spec = _spec(names, {"mode": "zscore"}, stats, (64, 64))
    out = prepare_inputs(labeled, spec, indices=[0], progress=False)[0]
    torch.testing.assert_close(out, view, rtol=0, atol=0)
    assert out[:, ~torch.from_numpy(mask)].abs().max().item() == 0.0   # old code: -2.4, -2.75, -1.67
