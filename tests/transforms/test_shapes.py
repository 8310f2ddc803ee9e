"""Shape, dtype and channel invariants of the CPU view generators, 2D and 3D."""

import numpy as np
import pytest
import torch

from domainssl.transforms import build_views

from transform_samples import NO_INTENSITY, make_sample

SMALL_2D = {"global": {"size": 24}, "local": {"size": 12}, "n_local": 3}


@pytest.mark.parametrize("channels", [1, 3, 4, 13, 40])
@pytest.mark.parametrize("kind,expected", [("two_view", [24, 24]), ("multi_crop", [24, 24, 12, 12, 12]),
                                           ("single", [24])])
def test_2d_views_keep_channels_any_count(channels, kind, expected):
    sample = make_sample(channels, (40, 36), label=1)
    gen = build_views("multispectral", kind, 2, sample["channel_names"], overrides=SMALL_2D, seed=3)
    out = gen(sample)
    assert [tuple(v.shape) for v in out["views"]] == [(channels, s, s) for s in expected]
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in out["views"])
    assert out["label"] == 1
    assert gen.output_channel_names() == sample["channel_names"]


@pytest.mark.parametrize("channels", [1, 3, 4, 13, 40])
def test_two_views_differ_but_keep_channel_order(channels):
    # Channel c holds values around c * 1000 HU-like units: after any crop/flip/rot90 the channel
    # means must still increase with c, while the two views show different pixels.
    sample = make_sample(channels, (40, 40))
    over = {**SMALL_2D, **NO_INTENSITY, "normalise": {"mode": "rule", "scale": 1e-3}}
    gen = build_views("multispectral", "two_view", 2, sample["channel_names"], overrides=over, seed=0)
    v1, v2 = gen({**sample, "index": 5})["views"]
    for v in (v1, v2):
        means = v.mean(dim=(1, 2)).numpy()
        assert np.all(np.diff(means) > 0.5)
        assert np.allclose(means, np.arange(channels) + 0.125, atol=0.05)
    assert not torch.allclose(v1, v2)


def test_3d_multi_crop_shapes():
    sample = make_sample(1, (40, 40, 40), scale=100.0)
    over = {"global": {"size": 24}, "local": {"size": [12, 10, 10]}, "n_local": 4}
    gen = build_views("ct", "multi_crop", 3, ["c0"], overrides=over)
    views = gen(sample)["views"]
    assert [tuple(v.shape) for v in views] == [(1, 24, 24, 24)] * 2 + [(1, 12, 10, 10)] * 4
    assert all(v.dtype == torch.float32 for v in views)


@pytest.mark.parametrize("channels", [2, 4])
def test_3d_two_view_multichannel_mr(channels):
    sample = make_sample(channels, (32, 30, 28), scale=100.0)
    gen = build_views("mr", "two_view", 3, sample["channel_names"], overrides={"size": 16})
    views = gen(sample)["views"]
    assert [tuple(v.shape) for v in views] == [(channels, 16, 16, 16)] * 2
    assert all(torch.isfinite(v).all() for v in views)


def test_slab_views_from_3d_for_2d_encoders():
    sample = make_sample(1, (10, 40, 40), scale=100.0, channel_names=["CT"])
    gen = build_views("ct", "multi_crop", 2, ["CT"], overrides=SMALL_2D)
    views = gen(sample)["views"]
    assert [tuple(v.shape) for v in views] == [(3, 24, 24)] * 2 + [(3, 12, 12)] * 3
    assert gen.output_channel_names(3) == ["CT@z-1[L40,W400]", "CT@z+0[L40,W400]", "CT@z+1[L40,W400]"]


def test_slab_views_are_adjacent_slices():
    # Slice z holds the constant value z (HU): a 3-slice slab must be three consecutive values.
    vol = np.broadcast_to(np.arange(12, dtype=np.float32)[:, None, None], (12, 20, 20))[None].copy()
    over = {**NO_INTENSITY, "size": 20, "scale": [1, 1], "normalise": {"mode": "none"}}
    gen = build_views("mr", "two_view", 2, ["T1"], overrides=over)
    for view in gen({"image": vol})["views"]:
        firsts = view[:, 0, 0].numpy()
        assert np.allclose(np.diff(firsts), 1.0)
        assert np.allclose(view.numpy(), firsts[:, None, None])


def test_fluorescence_z_slice_views_from_zstack():
    sample = make_sample(2, (6, 40, 40))
    gen = build_views("fluorescence", "two_view", 2, sample["channel_names"], overrides=SMALL_2D)
    assert gen.output_channel_names(3) == ["c0", "c1"]
    assert [tuple(v.shape) for v in gen(sample)["views"]] == [(2, 24, 24)] * 2


def test_wrong_channels_and_dims_are_clear_errors():
    sample = make_sample(3, (30, 30))
    gen = build_views("multispectral", "two_view", 2, ["a", "b", "c", "d"], overrides=SMALL_2D)
    with pytest.raises(ValueError, match="channel"):
        gen(sample)
    gen3 = build_views("ct", "two_view", 3, ["c0", "c1", "c2"])
    with pytest.raises(ValueError, match="3D views cannot be cut from 2D"):
        gen3(sample)


def test_elastic_and_affine_views_cpu_and_batch():
    sample = make_sample(1, (28, 28, 28), scale=100.0)
    over = {"size": 16, "affine_p": 1.0, "rotate_deg": 15.0, "elastic_p": 1.0, "elastic_magnitude": 2.0,
            "jitter_p": 0, "noise_p": 0, "blur_p": 0}
    gen = build_views("ct", "two_view", 3, ["c0"], overrides=over)
    plain = build_views("ct", "two_view", 3, ["c0"], overrides={**over, "elastic_p": 0.0, "affine_p": 0.0})
    bent, flat = gen({**sample, "index": 0})["views"], plain({**sample, "index": 0})["views"]
    assert [tuple(v.shape) for v in bent] == [(1, 16, 16, 16)] * 2
    assert not torch.allclose(bent[0], flat[0])
    from domainssl.transforms import build_batch_views

    batch = build_batch_views("ct", "two_view", 3, ["c0"], overrides=over)
    out = batch({"image": torch.from_numpy(sample["image"])[None].repeat(3, 1, 1, 1, 1)})["views"]
    assert [tuple(v.shape) for v in out] == [(3, 1, 16, 16, 16)] * 2 and torch.isfinite(out[0]).all()


def test_import_is_light():
    import subprocess
    import sys

    code = ("import sys, domainssl.transforms as t; t.PRESET_NAMES; "
            "heavy = [m for m in ('torch', 'monai', 'albumentations', 'cv2') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
