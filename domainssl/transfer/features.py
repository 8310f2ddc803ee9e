"""Frozen features of an encoder over prepared inputs, cached on disk.

The few-shot protocol probes many (shots, seed) draws; the features of every image are computed
once per encoder and reused by all of them, and across runs through the cache.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .progress import Progress


def extract_features(encoder, inputs, batch_size: int = 256, device="cpu", progress: bool = True,
                     label: str = "features") -> np.ndarray:
    """Pooled features `(N, embed_dim)` float32 of `inputs` `(N, C, *S)`, encoder in eval mode."""
    import torch

    encoder = encoder.to(device).eval()
    out = []
    bar = Progress(label, len(inputs), enabled=progress)
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start:start + batch_size].to(device)
            feats = encoder(batch)
            out.append(feats.float().cpu().numpy())
            bar.update(len(batch))
    bar.close()
    return np.concatenate(out) if out else np.zeros((0, int(encoder.embed_dim)), np.float32)


def cache_key(*parts) -> str:
    """A short stable key from JSON-able parts (encoder weights hash, data fingerprint, spec)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def cached_features(encoder, inputs, key: str, cache_dir=None, **kwargs) -> np.ndarray:
    """`extract_features`, read from / written to `cache_dir/<key>.npy` when a cache dir is given."""
    if cache_dir is None:
        return extract_features(encoder, inputs, **kwargs)
    path = Path(cache_dir) / f"{key}.npy"
    if path.is_file():
        feats = np.load(path, allow_pickle=False)
        if len(feats) == len(inputs):
            return feats
    feats = extract_features(encoder, inputs, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, feats, allow_pickle=False)
    tmp.replace(path)
    return feats
