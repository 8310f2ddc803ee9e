"""Random streams for views: reproducible per sample, independent across workers and ranks.

A view's randomness is a pure function of (base seed, epoch, sample index) when the sample
carries an `index`, so the same sample gets the same views in every run whatever the number of
DataLoader workers; without an index it falls back to (seed, epoch, rank, worker id, call count),
which is still reproducible for a fixed worker layout and never repeats across workers.
"""

from __future__ import annotations

import numpy as np

from ..ranks import process_rank

# Stream tags keep the three kinds of key from ever colliding.
_BY_INDEX, _BY_COUNTER, _BY_BATCH = 0, 1, 2


def _worker_id() -> int:
    try:
        from torch.utils.data import get_worker_info
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    info = get_worker_info()
    return 0 if info is None else int(info.id)


def sample_rng(seed: int, epoch: int, index: int | None, counter: int) -> np.random.Generator:
    """Generator for one sample: keyed by its dataset index, else by worker/rank and a counter."""
    if index is not None:
        key = [int(seed), int(epoch), _BY_INDEX, int(index)]
    else:
        key = [int(seed), int(epoch), _BY_COUNTER, process_rank(), _worker_id(), int(counter)]
    return np.random.default_rng(key)


def batch_rng(seed: int, epoch: int, counter: int) -> np.random.Generator:
    """Generator for one batch of the GPU path: keyed by (seed, epoch, rank, batch count)."""
    return np.random.default_rng([int(seed), int(epoch), _BY_BATCH, process_rank(), int(counter)])


def torch_generator(rng: np.random.Generator, device="cpu"):
    """A torch.Generator on `device` seeded from `rng` (for noise drawn by torch)."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(int(rng.integers(0, 2**62)))
    return gen
