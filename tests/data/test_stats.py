"""Streaming channel statistics against numpy on the whole data."""

import json

import numpy as np
import pytest

from domainssl.data.stats import ChannelStats, compute_stats, load_stats, save_stats


def test_streaming_matches_numpy_with_mask():
    rng = np.random.default_rng(0)
    patches = [rng.normal([[[10.0]], [[-3.0]], [[500.0]]], [[[2.0]], [[0.5]], [[40.0]]],
                          size=(3, 16, 16)) for _ in range(30)]
    masks = [rng.random((16, 16)) > 0.2 for _ in range(30)]
    acc = ChannelStats(["a", "b", "c"], reservoir=1_000_000)
    for p, m in zip(patches, masks):
        acc.update(p, m)
    res = acc.result()
    allv = np.concatenate([p[:, m] for p, m in zip(patches, masks)], axis=1)
    np.testing.assert_allclose(res["mean"], allv.mean(1), rtol=1e-10)
    np.testing.assert_allclose(res["std"], allv.std(1), rtol=1e-10)
    np.testing.assert_allclose(res["p01"], np.percentile(allv, 1, axis=1), rtol=1e-5)
    np.testing.assert_allclose(res["p99"], np.percentile(allv, 99, axis=1), rtol=1e-5)
    assert res["n_pixels"] == [int(sum(m.sum() for m in masks))] * 3


def test_reservoir_percentiles_are_close_with_small_reservoir():
    rng = np.random.default_rng(1)
    acc = ChannelStats(["x"], reservoir=5000)
    vals = []
    for _ in range(50):
        p = rng.exponential(100.0, size=(1, 32, 32))
        vals.append(p.ravel())
        acc.update(p)
    res = acc.result(percentiles=(1, 50, 99))
    allv = np.concatenate(vals)
    assert res["p50"][0] == pytest.approx(np.percentile(allv, 50), rel=0.05)
    assert res["p99"][0] == pytest.approx(np.percentile(allv, 99), rel=0.1)


def test_nan_ignored_and_round_trip(tmp_path):
    p = np.array([[[1.0, np.nan], [3.0, 5.0]]])
    stats = compute_stats([{"image": p}], ["only"])
    assert stats["mean"] == [3.0]
    save_stats(stats, tmp_path / "s.json")
    assert load_stats(tmp_path / "s.json")["mean"] == [3.0]
    (tmp_path / "bad.json").write_text(json.dumps({"mean": [1]}))
    with pytest.raises(ValueError, match="channel_names"):
        load_stats(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="2 channels"):
        ChannelStats(["a"]).update(np.zeros((2, 3, 3)))
