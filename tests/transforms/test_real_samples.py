"""View generation on real scanner, satellite and microscope patches from ../shared/data."""

import warnings

import numpy as np
import torch

from domainssl import open_image
from domainssl.transforms import build_views

from transform_samples import NO_INTENSITY


def _sample(image, region):
    arr = image.read(region).astype(np.float32)
    return {"image": arr, "channel_names": image.channel_names, "spacing": image.spacing,
            "units": image.units, "source": {"path": image.path, "region": region}}


def test_ct_head_dicom_windows_and_target_spacing(shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the series is tilted and unevenly spaced, on purpose
        ct = open_image(shared_data / "dicom" / "ct_head_series_ge")
        sample = _sample(ct, (slice(None), slice(6, 22), slice(176, 336), slice(176, 336)))
    assert sample["image"].min() < -500 and sample["image"].max() > 500  # HU, air to bone
    over = {**NO_INTENSITY, "size": [8, 48, 48], "target_spacing": [4.0, 1.5, 1.5],
            "normalise": {"windows": [[40, 80], [40, 400], [600, 2800]]}}
    gen = build_views("ct", "two_view", 3, ["CT"], overrides=over)
    views = gen(sample)["views"]
    assert [tuple(v.shape) for v in views] == [(3, 8, 48, 48)] * 2
    for v in views:
        assert float(v.min()) >= 0.0 and float(v.max()) <= 1.0
        inside = ((v > 0) & (v < 1)).float().mean((1, 2, 3))
        assert bool((inside > 0.05).all())  # every window sees tissue inside its range
    slab = build_views("ct", "multi_crop", 2, ["CT"], overrides={"global": {"size": 64}, "local": {"size": 32},
                                                                  "n_local": 2})
    views = slab(sample)["views"]
    assert [tuple(v.shape) for v in views] == [(3, 64, 64)] * 2 + [(3, 32, 32)] * 2


def test_mr_template_multi_crop(shared_data):
    mr = open_image(shared_data / "nifti" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    sample = _sample(mr, (slice(None), slice(60, 108), slice(80, 128), slice(60, 108)))
    gen = build_views("mr", "multi_crop", 3, mr.channel_names,
                      overrides={"global": {"size": 24}, "local": {"size": 12}, "n_local": 4})
    views = gen(sample)["views"]
    assert [tuple(v.shape) for v in views] == [(1, 24, 24, 24)] * 2 + [(1, 12, 12, 12)] * 4
    assert all(torch.isfinite(v).all() and 0.2 < float(v.mean()) < 0.9 for v in views[:2])


def test_sentinel2_views_at_physical_extent_with_nodata_mask(shared_data):
    s2 = open_image(shared_data / "geotiff" / "s2_l2a_T29RKH_20200219_12band_200m_cog.tif")
    sample = _sample(s2, (slice(None), slice(0, 96), slice(0, 96)))
    sample["mask"] = (sample["image"] != s2.meta.get("nodata", 0)).all(0)
    # 200 m pixels: 6.4-12.8 km crops are 32-64 px, resampled to 32 px views
    over = {"global": {"size": 32, "extent": [6400, 12800]}, "local": {"size": 16, "extent": [2000, 4000]},
            "n_local": 2}
    gen = build_views("multispectral", "multi_crop", 2, s2.channel_names, overrides=over)
    views = gen(sample)["views"]
    assert [tuple(v.shape) for v in views] == [(12, 32, 32)] * 2 + [(12, 16, 16)] * 2
    assert all(torch.isfinite(v).all() for v in views)
    assert gen.output_channel_names() == s2.channel_names
    # reflectance / 10000 keeps the bands' order of magnitude (B01 haze << B08 vegetation NIR)
    assert 0.0 < float(views[0][0].mean()) < 1.0


def test_microscopy_zstack_slices_and_volumes(shared_data):
    im = open_image(shared_data / "microscopy" / "neubias" / "xyzc_16bit__dna_conf_wf.tif")
    sample = _sample(im, (slice(None), slice(0, 32), slice(0, 96), slice(0, 96)))
    over = {"global": {"size": 48}, "local": {"size": 24}, "n_local": 2}
    views2d = build_views("fluorescence", "multi_crop", 2, im.channel_names, overrides=over)(sample)["views"]
    assert [tuple(v.shape) for v in views2d] == [(2, 48, 48)] * 2 + [(2, 24, 24)] * 2
    views3d = build_views("fluorescence", "two_view", 3, im.channel_names, overrides={"size": 16})(sample)["views"]
    assert [tuple(v.shape) for v in views3d] == [(2, 16, 16, 16)] * 2
    assert all(torch.isfinite(v).all() for v in views2d + views3d)
