"""Intensity maps and ops: CT windows, statistics, dropout, blur backends, RGB-only refusals."""

import numpy as np
import pytest
import torch

from domainssl.transforms import (RGBRequiredError, adjust_hue, adjust_saturation, build_views, ct_window,
                                  ct_windows, to_grayscale)
from domainssl.transforms.config import ViewConfig
from domainssl.transforms.cv2_kernels import gaussian_blur_, power_, resize
from domainssl.transforms.intensity import apply_intensity, bias_field, gaussian_blur
from domainssl.transforms.params import sample_view_params

from transform_samples import BANDS13, NO_INTENSITY, make_sample, s2_sample


def test_ct_window_maps_known_hu_values():
    hu = np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0])
    assert np.allclose(ct_window(hu, 40, 400), [0.0, 0.0, 0.5, 1.0, 1.0])
    assert torch.allclose(ct_window(torch.tensor(hu), 40, 400), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0], dtype=torch.float64))
    # lung window: level -600, width 1500 -> -1350 .. 150
    assert np.allclose(ct_window(np.array([-1350.0, -600.0, 150.0]), -600, 1500), [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="width"):
        ct_window(hu, 40, 0)


def test_ct_windows_become_channels():
    hu = np.full((1, 4, 4), 40.0, np.float32)
    out = ct_windows(hu, [(40, 400), (-600, 1500), (400, 1800)])
    assert out.shape == (3, 4, 4) and out.dtype == np.float32
    assert np.allclose(out[:, 0, 0], [0.5, (40 + 1350) / 1500, (40 + 500) / 1800])


@pytest.mark.parametrize("hu,expected", [(-160.0, 0.0), (40.0, 0.5), (240.0, 1.0), (-1000.0, 0.0), (1000.0, 1.0)])
def test_ct_preset_views_window_hu(hu, expected):
    vol = np.full((1, 20, 20, 20), hu, np.float32)
    gen = build_views("ct", "two_view", 3, ["CT"], overrides={**NO_INTENSITY, "size": 8})
    for v in gen({"image": vol})["views"]:
        assert torch.allclose(v, torch.full_like(v, expected), atol=1e-6)


def test_several_ct_windows_in_views():
    vol = np.full((1, 16, 16, 16), 40.0, np.float32)
    over = {**NO_INTENSITY, "size": 8, "normalise": {"windows": [[40, 400], [-600, 1500]]}}
    gen = build_views("ct", "single", 3, ["CT"], overrides=over)
    (v,) = gen({"image": vol})["views"]
    assert v.shape == (2, 8, 8, 8)
    assert np.allclose(v.mean((1, 2, 3)).numpy(), [0.5, 1390 / 1500], atol=1e-6)
    assert gen.output_channel_names() == ["CT[L40,W400]", "CT[L-600,W1500]"]


def test_zscore_statistics_are_matched_by_channel_name():
    sample = make_sample(3, (20, 20))
    names = sample["channel_names"]
    stats = {"channel_names": names[::-1], "mean": [2000.0, 1000.0, 0.0], "std": [10.0, 10.0, 10.0],
             "p01": [0, 0, 0], "p99": [1, 1, 1]}
    over = {**NO_INTENSITY, "size": 20, "scale": [1, 1], "normalise": "zscore"}
    gen = build_views("multispectral", "single", 2, names, stats=stats, overrides=over)
    (v,) = gen(sample)["views"]
    # channel c holds c*1000 + U(0, 250): z-scored with its own mean c*1000 -> ~12.5 everywhere
    assert np.allclose(v.mean((1, 2)).numpy(), 12.5, atol=1.0)
    with pytest.raises(ValueError, match="no entry for channel"):
        build_views("multispectral", "single", 2, ["c0", "x"], stats=stats, overrides=over)
    with pytest.raises(ValueError, match="needs archive statistics"):
        build_views("multispectral", "single", 2, names, overrides=over)


def test_percentile_normalisation_ignores_masked_and_nan_pixels():
    sample = make_sample(2, (24, 24), scale=100.0)
    img = sample["image"]
    img[:, :4] = 1e6  # nodata stripe, masked
    img[0, 10, 10] = np.nan
    mask = np.ones((24, 24), bool)
    mask[:4] = False
    over = {**NO_INTENSITY, "size": 24, "scale": [1, 1], "rot90_p": 0.0, "flip_p": 0.0}
    gen = build_views("fluorescence", "single", 2, sample["channel_names"], overrides=over)
    (v,) = gen({**sample, "mask": mask})["views"]
    assert torch.isfinite(v).all()
    assert torch.all(v[:, :4] == 0)  # invalid pixels become 0 after normalisation
    assert -0.05 < float(v[:, 4:].min()) and float(v[:, 4:].max()) < 1.05  # p1..p99.8 of valid pixels


@pytest.mark.parametrize("channels", [1, 2, 13])
def test_band_dropout_never_drops_every_band(channels):
    cfg = ViewConfig(channel_dropout_p=1.0, channel_dropout_rate=1.0)
    p = sample_view_params(np.random.default_rng(0), 500, cfg, (32, 32), np.ones(2), channels)
    assert np.all((~p.drop).sum(1) >= 1)
    if channels > 1:
        assert np.all((~p.drop).sum(1) == 1)  # rate 1: all but the rescued one
    cfg = ViewConfig(channel_dropout_p=1.0, channel_dropout_rate=0.5)
    p = sample_view_params(np.random.default_rng(1), 500, cfg, (32, 32), np.ones(2), channels)
    assert np.all((~p.drop).sum(1) >= 1)
    assert (p.drop.any() if channels > 1 else not p.drop.any())


def test_band_dropout_in_views_zeroes_whole_bands():
    sample = s2_sample()
    over = {**NO_INTENSITY, "channel_dropout_p": 1.0, "channel_dropout_rate": 1.0, "size": 16}
    gen = build_views("multispectral", "multi_crop", 2, BANDS13, overrides=over)
    for v in gen(sample)["views"]:
        live = (v.abs().amax((1, 2)) > 0).sum()
        assert int(live) == 1


def test_opencv_kernels_match_torch_2d_and_3d():
    rng = np.random.default_rng(0)
    for shape in [(3, 20, 22), (2, 12, 14, 16)]:
        x = torch.from_numpy(rng.random((1,) + shape, dtype=np.float32))
        ref = gaussian_blur(x.clone(), np.array([1.3]))
        out = torch.from_numpy(gaussian_blur_(x[0].numpy().copy(), 1.3, 4))[None]
        assert torch.allclose(ref, out, atol=1e-5)
        assert not torch.allclose(ref, x, atol=1e-3)
        size = (9,) * (len(shape) - 1)
        crop = x[0].numpy()[(slice(None),) + (slice(1, 11),) * (len(shape) - 1)]  # strided view
        mode = "bilinear" if len(shape) == 3 else "trilinear"
        ref = torch.nn.functional.interpolate(torch.from_numpy(crop.copy())[None], size=size, mode=mode,
                                              align_corners=False)
        assert torch.allclose(ref[0], torch.from_numpy(resize(crop, size)), atol=1e-4)
        gam = np.array([0.7, 1.3, 1.0][: shape[0]])
        ref = x[0] ** torch.tensor(gam, dtype=torch.float32).reshape((-1,) + (1,) * (len(shape) - 1))
        assert torch.allclose(ref, torch.from_numpy(power_(x[0].numpy().copy(), gam)), atol=1e-5)


def test_batched_intensity_equals_per_sample():
    cfg = ViewConfig(jitter_p=1.0, brightness=0.2, contrast=0.3, gamma=(0.7, 1.4), blur_p=0.5,
                     blur_sigma=(0.5, 1.5), channel_dropout_p=0.5, bias_field_p=0.5, bias_field_coeff=0.4,
                     solarize_p=0.5)
    x = torch.from_numpy(np.random.default_rng(0).random((6, 4, 16, 16), dtype=np.float32))
    p = sample_view_params(np.random.default_rng(3), 6, cfg, (16, 16), np.ones(2), 4)
    batched = apply_intensity(x.clone(), p)
    for i in range(6):
        single = apply_intensity(x[i:i + 1].clone(), p.row(i), blur_backend="cv2")
        assert torch.allclose(batched[i:i + 1], single, atol=1e-5), i


def test_bias_field_is_smooth_positive_and_neutral_at_zero():
    f = bias_field(np.array([[0.3] * 9, [0.0] * 9]), (20, 20), torch.zeros(1))
    assert f.shape == (2, 1, 20, 20) and bool((f > 0).all())
    assert torch.allclose(f[1], torch.ones_like(f[1]))
    assert float(f[0].std()) > 0.05


def test_rgb_only_ops_refuse_13_bands_with_a_clear_message():
    x = torch.rand(13, 8, 8)
    for op in (lambda: adjust_hue(x, 0.1, BANDS13), lambda: adjust_saturation(x, 1.2, BANDS13),
               lambda: to_grayscale(x, BANDS13)):
        with pytest.raises(RGBRequiredError, match=r"RGB-only operation.*13 channel\(s\)"):
            op()
    with pytest.raises(RGBRequiredError, match="hue is an RGB-only operation"):
        build_views("multispectral", "two_view", 2, BANDS13, overrides={"hue": 0.1})
    with pytest.raises(RGBRequiredError, match="grayscale"):
        build_views("rgb", "two_view", 2, ["R", "G", "B", "NIR"])


def test_rgb_ops_on_rgb():
    x = torch.rand(3, 8, 8)
    gray = to_grayscale(x, ["R", "G", "B"])
    assert torch.allclose(gray[0], gray[1], atol=1e-6) and torch.allclose(gray[1], gray[2], atol=1e-6)
    assert torch.allclose(gray[0], 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2], atol=1e-5)
    assert torch.allclose(adjust_hue(x, 1.0, ["red", "green", "blue"]), x, atol=1e-5)  # a full turn
    assert not torch.allclose(adjust_hue(x, 0.25, ["R", "G", "B"]), x, atol=1e-2)
    assert torch.allclose(adjust_saturation(x, 0.0, ["R", "G", "B"]), gray, atol=1e-5)
    gen = build_views("rgb", "two_view", 2, ["R", "G", "B"], overrides={"global": {"size": 16}})
    img = np.random.default_rng(0).integers(0, 256, (3, 32, 32)).astype(np.float32)
    views = gen({"image": img})["views"]
    assert [tuple(v.shape) for v in views] == [(3, 16, 16)] * 2


def test_views_without_opencv_fall_back_to_torch(monkeypatch):
    from domainssl.transforms import cv2_kernels

    sample = {**make_sample(4, (40, 40)), "index": 2}
    over = {"global": {"size": 16}, "jitter_p": 1.0, "blur_p": 1.0, "noise_p": 0.0}
    fast = build_views("multispectral", "two_view", 2, sample["channel_names"], overrides=over)(sample)["views"]
    monkeypatch.setattr(cv2_kernels, "_AVAILABLE", False)
    slow = build_views("multispectral", "two_view", 2, sample["channel_names"], overrides=over)(sample)["views"]
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(fast, slow))
