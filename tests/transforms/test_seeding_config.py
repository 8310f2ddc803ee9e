"""Reproducible, worker-independent randomness; presets and recipe overrides."""

import numpy as np
import pytest
import torch

from domainssl.transforms import PRESET_NAMES, build_views, preset_config
from domainssl.transforms import seeding
from domainssl.transforms.config import ViewConfig
from domainssl.transforms.params import sample_view_params
from domainssl.transforms.views import build_views_from_recipe

from transform_samples import BANDS13, s2_sample

OVER = {"global": {"size": 16}, "local": {"size": 8}, "n_local": 2}


def _views(gen, sample):
    return gen(sample)["views"]


def test_same_seed_same_views_other_seed_or_epoch_differs():
    sample = {**s2_sample(), "index": 7}
    a = build_views("multispectral", "multi_crop", 2, BANDS13, overrides=OVER, seed=11)
    b = build_views("multispectral", "multi_crop", 2, BANDS13, overrides=OVER, seed=11)
    va, vb = _views(a, sample), _views(b, sample)
    assert all(torch.equal(x, y) for x, y in zip(va, vb))
    assert all(torch.equal(x, y) for x, y in zip(va, _views(a, sample)))  # keyed by index, not calls
    c = build_views("multispectral", "multi_crop", 2, BANDS13, overrides=OVER, seed=12)
    assert not torch.equal(va[0], _views(c, sample)[0])
    a.set_epoch(1)
    assert not torch.equal(va[0], _views(a, sample)[0])
    assert not torch.equal(va[0], _views(b, {**sample, "index": 8})[0])


def test_without_index_workers_draw_independent_reproducible_streams(monkeypatch):
    sample = s2_sample()
    runs = {}
    for worker in (0, 1):
        monkeypatch.setattr(seeding, "_worker_id", lambda w=worker: w)
        for rep in range(2):
            gen = build_views("multispectral", "two_view", 2, BANDS13, overrides=OVER, seed=0)
            runs[(worker, rep)] = [_views(gen, sample)[0] for _ in range(2)]
    assert all(torch.equal(x, y) for x, y in zip(runs[(0, 0)], runs[(0, 1)]))
    assert not torch.equal(runs[(0, 0)][0], runs[(1, 0)][0])
    assert not torch.equal(runs[(0, 0)][0], runs[(0, 0)][1])  # successive calls differ


@pytest.mark.parametrize("name", PRESET_NAMES)
@pytest.mark.parametrize("dims", [2, 3])
def test_every_preset_builds_and_runs(name, dims):
    names = ["R", "G", "B"] if name == "rgb" else ["c0", "c1"]
    img = np.random.default_rng(0).uniform(0, 255, (len(names),) + (20,) * dims).astype(np.float32)
    gen = build_views(name, "multi_crop", dims, names, overrides={"global": {"size": 10}, "local": {"size": 6},
                                                                 "n_local": 2})
    views = _views(gen, {"image": img})
    assert len(views) == 4 and all(torch.isfinite(v).all() for v in views)


def test_recipe_overrides_field_by_field():
    recipe = {"preset": "ct", "kind": "multi_crop", "n_local": 3, "noise_p": 0.5,
              "global": {"size": 32, "scale": [0.5, 1.0]}, "local": {"size": [16, 16, 12]},
              "normalise": {"windows": [[40, 400], [-600, 1500]]},
              "asymmetric": [{"blur_p": 1.0}, {"blur_p": 0.0, "solarize_p": 0.1}]}
    gen = build_views_from_recipe(recipe, spatial_dims=3, channel_names=["CT"])
    cfg = gen.plan.config
    assert cfg.global_view.size == (32,) and cfg.global_view.scale == (0.5, 1.0)
    assert cfg.local_view.size == (16, 16, 12) and cfg.local_view.noise_p == 0.5
    assert cfg.global_view.noise_p == 0.5 and cfg.n_local == 3
    assert [g.blur_p for g, _ in gen.plan.groups[:2]] == [1.0, 0.0]
    assert gen.plan.groups[2][1] == 3 and gen.n_views == 5
    assert gen.output_channel_names() == ["CT[L40,W400]", "CT[L-600,W1500]"]
    # preset values not overridden stay
    assert cfg.global_view.rot90_p == preset_config("ct", 3).global_view.rot90_p


def test_bad_overrides_are_clear_errors():
    with pytest.raises(ValueError, match="did you mean noise_p"):
        build_views("ct", "two_view", 3, ["CT"], overrides={"nosie_p": 0.3})
    with pytest.raises(ValueError, match="probability"):
        build_views("ct", "two_view", 3, ["CT"], overrides={"blur_p": 2})
    with pytest.raises(ValueError, match="low <= high"):
        build_views("ct", "two_view", 3, ["CT"], overrides={"local": {"scale": [0.5, 0.1]}})
    with pytest.raises(ValueError, match="unknown view preset"):
        build_views("sar", "two_view", 2, ["VV"])
    with pytest.raises(ValueError, match="unknown view kind"):
        build_views("ct", "three_view", 3, ["CT"])
    with pytest.raises(ValueError, match="magnitude"):
        build_views("ct", "two_view", 3, ["CT"], overrides={"brightness": -0.1})
    with pytest.raises(ValueError, match="must be positive"):
        build_views("ct", "two_view", 3, ["CT"], overrides={"gamma": [0, 2]})
    with pytest.raises(ValueError, match="normalise mode"):
        build_views("ct", "two_view", 3, ["CT"], overrides={"normalise": {"mode": "minmax"}})


def test_crop_at_physical_extent_and_target_spacing():
    rng = np.random.default_rng(0)
    # 640 m crops on 10 m pixels are 64 px, whatever the patch size
    cfg = ViewConfig(size=(32,), extent=(640.0, 640.0), ratio=(1.0, 1.0))
    p = sample_view_params(rng, 20, cfg, (200, 200), np.array([10.0, 10.0]), 1)
    assert np.all(p.extent == 64)
    # 24^3 views at 2 mm from 0.5 x 1 x 1 mm voxels cover 48 mm: 96 x 48 x 48 voxels
    cfg = ViewConfig(size=(24,), target_spacing=(2.0, 2.0, 2.0), ratio=(1.0, 1.0))
    p = sample_view_params(rng, 5, cfg, (120, 60, 60), np.array([0.5, 1.0, 1.0]), 1)
    assert np.all(p.extent == [96, 48, 48])
    # scale: area fraction of the patch
    cfg = ViewConfig(size=(16,), scale=(0.25, 0.25), ratio=(1.0, 1.0))
    p = sample_view_params(rng, 5, cfg, (40, 40), np.ones(2), 1)
    assert np.all(p.extent == 20) and np.all(p.start + p.extent <= 40)


def test_target_spacing_views_resample_to_that_spacing():
    # Voxel values are the x position in mm (0.5 mm voxels); linear interpolation is exact on a
    # ramp, so views resampled to 1 mm step by exactly 1 per pixel along x and 0 along y, z.
    x_mm = np.arange(64, dtype=np.float32) * 0.5
    vol = np.broadcast_to(x_mm, (16, 16, 64))[None].copy()
    over = {"jitter_p": 0, "noise_p": 0, "blur_p": 0, "affine_p": 0, "flip_p": 0, "rot90_p": 0,
            "size": [8, 8, 16], "target_spacing": [1.0, 1.0, 1.0], "ratio": [1, 1],
            "normalise": {"mode": "none"}}
    gen = build_views("ct", "two_view", 3, ["CT"], overrides=over)
    for v in gen({"image": vol, "spacing": (1.0, 1.0, 0.5)})["views"]:
        assert v.shape == (1, 8, 8, 16)
        assert np.allclose(np.diff(v[0].numpy(), axis=2), 1.0, atol=1e-4)
        assert np.allclose(np.diff(v[0].numpy(), axis=0), 0.0, atol=1e-4)


def test_generators_pickle_for_dataloader_workers():
    import pickle

    from domainssl.transforms import build_batch_views

    sample = {**s2_sample(), "index": 3}
    gen = build_views("multispectral", "two_view", 2, BANDS13, overrides=OVER, seed=4)
    clone = pickle.loads(pickle.dumps(gen))
    assert all(torch.equal(a, b) for a, b in zip(gen(sample)["views"], clone(sample)["views"]))
    pickle.loads(pickle.dumps(build_batch_views("ct", "two_view", 3, ["CT"])))


class _Patches(torch.utils.data.Dataset):
    """Four copies of one small patch; views made in the workers."""

    def __init__(self, gen, with_index: bool):
        self.gen, self.with_index = gen, with_index
        self.image = np.random.default_rng(0).uniform(0, 4000, (4, 24, 24)).astype(np.float32)

    def __len__(self):
        return 4

    def __getitem__(self, i):
        sample = {"image": self.image, "label": i}
        if self.with_index:
            sample["index"] = i
        return self.gen(sample)


def test_dataloader_workers_reproducible_and_independent():
    from domainssl.transforms import collate_views

    over = {"global": {"size": 8}, "jitter_p": 0.0}
    gen = build_views("multispectral", "two_view", 2, ["a", "b", "c", "d"], overrides=over, seed=9)

    def batches(workers, with_index):
        loader = torch.utils.data.DataLoader(_Patches(gen, with_index), batch_size=2, num_workers=workers,
                                             collate_fn=collate_views)
        return [b["views"][0] for b in loader]

    serial, parallel = batches(0, True), batches(2, True)
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel))  # same views whatever the workers
    first, second = batches(2, False)
    # without an index, worker 0 and worker 1 each start their own stream: their first items differ
    assert not torch.equal(first[0], second[0])


def test_epoch_in_the_sample_wins_for_persistent_workers():
    sample = {**s2_sample(), "index": 1}
    gen = build_views("multispectral", "two_view", 2, BANDS13, overrides=OVER, seed=0)
    gen.set_epoch(3)
    at3 = gen(sample)["views"][0]
    gen.set_epoch(0)
    assert torch.equal(gen({**sample, "epoch": 3})["views"][0], at3)
    assert not torch.equal(gen(sample)["views"][0], at3)
