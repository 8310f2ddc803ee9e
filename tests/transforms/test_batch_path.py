"""The GPU batch path (run on CPU tensors): same geometry as the CPU path, same statistics."""

import numpy as np
import pytest
import torch

from domainssl.transforms import build_batch_views, build_views, collate_patches, collate_views
from domainssl.transforms.config import ViewConfig
from domainssl.transforms.params import sample_view_params
from domainssl.transforms.spatial import crop_resize, grid_views, slab_batch, slab_single

from transform_samples import BANDS13, make_sample, s2_sample


@pytest.mark.parametrize("d", [2, 3])
def test_grid_path_equals_crop_path_for_axis_aligned_views(d):
    # Crops equal to the view size or twice it sample exactly at input pixel centres on both paths,
    # so every flip/rot90 combination must agree to float precision.
    size = (8,) * d
    x = torch.from_numpy(np.random.default_rng(0).random((2,) + (20,) * d, dtype=np.float32))
    cfg = ViewConfig(size=size, scale=(0.1, 1.0), flip_p=0.5, rot90_p=0.75)
    p = sample_view_params(np.random.default_rng(1), 40, cfg, (20,) * d, np.ones(d), 2)
    p.extent[:] = np.where(np.random.default_rng(2).random((40, 1)) < 0.5, 8, 16)
    p.start[:] = np.minimum(p.start, 20 - p.extent)
    assert set(p.rot_k) == {0, 1, 2, 3} and p.flip.any()
    grid = grid_views(x[None].expand(40, -1, *([-1] * d)), p, size)
    for i in range(40):
        ref = crop_resize(x, p.row(i), size)
        assert torch.allclose(grid[i:i + 1], ref, atol=1e-5), (i, p.rot_k[i], p.flip[i], p.extent[i])


def test_slab_batch_equals_slab_single():
    x = torch.from_numpy(np.random.default_rng(0).random((3, 2, 7, 6, 5), dtype=np.float32))
    starts = np.array([0, 2, 1])
    for axis in range(3):
        batch = slab_batch(x, starts, 3, axis)
        for i, s in enumerate(starts):
            assert torch.equal(batch[i], slab_single(x[i], int(s), 3, axis))


def _view_stats(views):
    v = views.flatten(2)
    return v.mean(-1).numpy(), v.std(-1).numpy()


@pytest.mark.parametrize("preset,dims,channels,shape", [
    ("multispectral", 2, BANDS13, (13, 40, 40)),
    ("ct", 3, ["CT"], (1, 24, 24, 24)),
    ("fluorescence", 2, ["dna", "actin"], (2, 40, 40)),
])
def test_batch_path_matches_cpu_statistics(preset, dims, channels, shape):
    n = 256
    # A smooth random field: view statistics then vary smoothly with the crop, so their
    # distribution is not a few spikes (white noise makes view std jump with the resize ratio).
    rng = np.random.default_rng(0)
    coarse = torch.from_numpy(rng.normal(0.0, 1.0, (1, shape[0]) + (5,) * dims).astype(np.float32))
    mode = "bilinear" if dims == 2 else "trilinear"
    base = torch.nn.functional.interpolate(coarse, size=shape[1:], mode=mode, align_corners=True)[0].numpy()
    base = base / base.std()
    img = (base * 300.0 + (np.arange(shape[0]) * 500.0 + 1000.0).reshape((-1,) + (1,) * dims)).astype(np.float32)
    if preset == "ct":  # HU around the soft-tissue window, so the window does not clip everything
        img = (base * 150.0 + 40.0).astype(np.float32)
    size = 16 if dims == 2 else 12
    over = {"global": {"size": size}, "local": {"size": size // 2}, "n_local": 2}
    cpu = build_views(preset, "multi_crop", dims, channels, overrides=over, seed=1)
    gpu = build_batch_views(preset, "multi_crop", dims, channels, overrides=over, seed=2)
    cpu_items = [cpu({"image": img, "index": i}) for i in range(n)]
    cpu_views = collate_views(cpu_items)["views"]
    gpu_views = gpu({"image": torch.from_numpy(img)[None].expand(n, *shape).contiguous()})["views"]
    assert [tuple(v.shape) for v in gpu_views] == [tuple(v.shape) for v in cpu_views]
    for vc, vg in zip(cpu_views, gpu_views):
        mc, sc = _view_stats(vc)
        mg, sg = _view_stats(vg)
        for a, b in ((mc, mg), (sc, sg)):
            # Mean over views of the per-view statistic, per channel: equal within 4 standard errors.
            se = np.sqrt(a.var(0) / n + b.var(0) / n) + 1e-4
            assert np.all(np.abs(a.mean(0) - b.mean(0)) < 4 * se), (a.mean(0), b.mean(0), se)
            # Its spread across views (the strength of the augmentation), pooled over channels after
            # removing each channel's mean: quantiles agree within 20% of the 10-90% range.
            qa = np.percentile(a - a.mean(0), [10, 25, 50, 75, 90])
            qb = np.percentile(b - b.mean(0), [10, 25, 50, 75, 90])
            assert np.all(np.abs(qa - qb) < 0.2 * (qa[-1] - qa[0]) + 1e-4), (qa, qb)


@pytest.mark.parametrize("dims", [2, 3])
def test_batch_and_cpu_noise_and_brightness_have_the_set_strength(dims):
    # On a constant image the view std is the noise std and the view mean the brightness shift:
    # both paths must give noise std 0.1 and shifts uniform in +-0.3 (std 0.3 / sqrt(3)).
    n, shape = 96, (1,) + (16,) * dims
    img = np.full(shape, 5000.0, np.float32)
    base = {"jitter_p": 0, "noise_p": 0, "blur_p": 0, "affine_p": 0, "channel_dropout_p": 0, "size": 8,
            "normalise": {"mode": "rule", "scale": 1e-4}}
    for over, stat, expected in (({"noise_p": 1.0, "noise_std": [0.1, 0.1]}, "std", 0.1),
                                 ({"jitter_p": 1.0, "brightness": 0.3, "contrast": 0.0, "gamma": [1, 1]},
                                  "spread", 0.3 / np.sqrt(3))):
        cfg = {**base, **over}
        cpu = build_views("multispectral", "single", dims, ["b"], overrides=cfg)
        gpu = build_batch_views("multispectral", "single", dims, ["b"], overrides=cfg)
        vc = torch.stack([cpu({"image": img, "index": i})["views"][0] for i in range(n)])
        vg = gpu({"image": torch.from_numpy(img)[None].expand(n, *shape)})["views"][0]
        for v in (vc, vg):
            flat = v.flatten(1)
            value = flat.std(1).mean() if stat == "std" else flat.mean(1).std()
            assert abs(float(value) - expected) < 0.15 * expected, (stat, float(value), expected)


def test_batch_module_passes_labels_and_is_seeded():
    sample = s2_sample()
    batch = collate_patches([{**sample, "index": i} for i in range(4)])
    assert batch["image"].shape == (4, 13, 48, 48) and batch["label"].tolist() == [2] * 4
    assert batch["spacing"].shape == (4, 2) and batch["index"].tolist() == [0, 1, 2, 3]
    over = {"global": {"size": 16}}
    a = build_batch_views("multispectral", "two_view", 2, BANDS13, overrides=over, seed=5)
    b = build_batch_views("multispectral", "two_view", 2, BANDS13, overrides=over, seed=5)
    out_a, out_b = a(batch), b(batch)
    assert out_a["label"].tolist() == [2] * 4
    assert all(torch.equal(x, y) for x, y in zip(out_a["views"], out_b["views"]))
    assert not torch.equal(out_a["views"][0], a(batch)["views"][0])  # next batch: new draws
    a.set_epoch(0)
    assert torch.equal(out_a["views"][0], a(batch)["views"][0])


def test_batch_slab_views_and_masks():
    vol = make_sample(1, (8, 20, 20), scale=100.0)["image"]
    mask = np.ones((8, 20, 20), bool)
    mask[:, :5] = False
    batch = collate_patches([{"image": vol, "mask": mask}, {"image": vol, "mask": mask}])
    gen = build_batch_views("ct", "multi_crop", 2, ["CT"], overrides={"global": {"size": 12}, "local": {"size": 6},
                                                                       "n_local": 2})
    views = gen(batch)["views"]
    assert [tuple(v.shape) for v in views] == [(2, 3, 12, 12)] * 2 + [(2, 3, 6, 6)] * 2
    assert all(torch.isfinite(v).all() for v in views)


def test_collate_errors_are_clear():
    with pytest.raises(ValueError, match="share one shape"):
        collate_patches([make_sample(1, (8, 8)), make_sample(1, (8, 9))])
    with pytest.raises(ValueError, match="label all or none"):
        collate_views([{"views": [torch.zeros(1, 2, 2)], "label": 1}, {"views": [torch.zeros(1, 2, 2)]}])
    out = collate_views([{"views": [torch.zeros(1, 4, 4), torch.ones(1, 2, 2)], "label": 3}] * 5)
    assert [tuple(v.shape) for v in out["views"]] == [(5, 1, 4, 4), (5, 1, 2, 2)]
    assert out["label"].dtype == torch.long
