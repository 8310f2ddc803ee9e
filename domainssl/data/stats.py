"""Streaming per-channel statistics (mean, std, percentiles) over a sample of patches.

Mean and variance are merged patch by patch (Chan et al.'s parallel update), so memory is
constant; percentiles come from a fixed-size uniform reservoir of pixel values per channel.
Nodata pixels (the sample's `mask`) are left out. The saved JSON is what augmentations
(normalisation) and the encoder card read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np


class ChannelStats:
    """Accumulates per-channel statistics from channel-first patches.

    Args:
        channel_names: names of the C channels.
        reservoir: pixel values kept per channel for percentiles.
        seed: reservoir sampling seed.
    """

    def __init__(self, channel_names: Sequence[str], reservoir: int = 200_000, seed: int = 0):
        self.channel_names = list(channel_names)
        c = len(self.channel_names)
        self.count = np.zeros(c, dtype=np.float64)
        self.mean = np.zeros(c, dtype=np.float64)
        self.m2 = np.zeros(c, dtype=np.float64)
        self.min = np.full(c, np.inf)
        self.max = np.full(c, -np.inf)
        self.reservoir_size = int(reservoir)
        self._res = [np.empty(0, dtype=np.float32) for _ in range(c)]
        self._seen = np.zeros(c, dtype=np.int64)
        self._rng = np.random.default_rng(seed)
        self.n_patches = 0

    def update(self, image: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Add one patch `image` (C, *S); `mask` (*S) True marks valid pixels."""
        if image.shape[0] != len(self.channel_names):
            raise ValueError(f"patch has {image.shape[0]} channels, stats track "
                             f"{len(self.channel_names)} ({self.channel_names})")
        flat = image.reshape(image.shape[0], -1).astype(np.float64, copy=False)
        if mask is not None:
            flat = flat[:, mask.reshape(-1)]
        self.n_patches += 1
        for c in range(flat.shape[0]):
            v = flat[c][np.isfinite(flat[c])]
            if v.size == 0:
                continue
            n_b, mean_b = v.size, float(v.mean())
            m2_b = float(((v - mean_b) ** 2).sum())
            n_a = self.count[c]
            delta = mean_b - self.mean[c]
            tot = n_a + n_b
            self.mean[c] += delta * n_b / tot
            self.m2[c] += m2_b + delta ** 2 * n_a * n_b / tot
            self.count[c] = tot
            self.min[c] = min(self.min[c], float(v.min()))
            self.max[c] = max(self.max[c], float(v.max()))
            self._reservoir_add(c, v.astype(np.float32))

    def _reservoir_add(self, c: int, v: np.ndarray) -> None:
        # Reservoir sampling in bulk: each incoming value replaces a random slot with
        # probability size / seen, which keeps the reservoir a uniform sample of all values.
        res, k = self._res[c], self.reservoir_size
        free = k - res.size
        if free > 0:
            res = np.concatenate([res, v[:free]])
            self._seen[c] += min(free, v.size)
            v = v[free:]
        if v.size:
            seen = self._seen[c] + np.arange(1, v.size + 1)
            slots = (self._rng.random(v.size) * seen).astype(np.int64)
            keep = slots < k
            res[slots[keep]] = v[keep]
            self._seen[c] += v.size
        self._res[c] = res

    def result(self, percentiles: Sequence[float] = (1, 99)) -> dict:
        """The statistics as a JSON-friendly dict (lists in channel order)."""
        std = np.sqrt(self.m2 / np.maximum(self.count, 1))
        out = {
            "channel_names": self.channel_names,
            "mean": self.mean.tolist(),
            "std": std.tolist(),
            "min": self.min.tolist(),
            "max": self.max.tolist(),
            "n_pixels": self.count.astype(int).tolist(),
            "n_patches": int(self.n_patches),
        }
        for p in percentiles:
            out[f"p{int(p):02d}"] = [float(np.percentile(r, p)) if r.size else float("nan")
                                     for r in self._res]
        return out


def compute_stats(samples: Iterable[dict], channel_names: Sequence[str], max_patches: int = 256,
                  percentiles: Sequence[float] = (1, 99)) -> dict:
    """Statistics over up to `max_patches` sample dicts (`image`, optional `mask`)."""
    acc = ChannelStats(channel_names)
    for i, sample in enumerate(samples):
        if i >= max_patches:
            break
        acc.update(np.asarray(sample["image"]), sample.get("mask"))
    if acc.n_patches == 0:
        raise ValueError("no patches to compute statistics from")
    return acc.result(percentiles)


def save_stats(stats: dict, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(stats, indent=2))


def load_stats(path) -> dict:
    stats = json.loads(Path(path).read_text())
    for key in ("channel_names", "mean", "std"):
        if key not in stats:
            raise ValueError(f"{path}: statistics file lacks {key!r}; recompute with domainssl stats")
    return stats
