"""Pretraining on images already in memory (a labeled set's training images, a numpy stack).

`ArrayDataModule` offers what `PatchDataModule` offers to a pretraining run (channel names,
spatial dims, spacing, statistics, a summary, an epoch-aware train loader) for an array
`(N, C, *S)` whose items are whole images; the views crop them. Used by the label-efficiency
benchmark to pretrain on a labeled set's training images without their labels.
"""

from __future__ import annotations

from typing import Callable, Sequence

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset

from ..data.datamodule import TransformReachesDataset
from ..data.dataset import EPOCH_STRIDE, EpochSampler, collate_samples, loader_generator
from ..data.stats import compute_stats


class ArraySamples(Dataset):
    """Samples (data-contract dicts) of the images in an array; index = epoch * STRIDE + item."""

    def __init__(self, images: np.ndarray, channel_names: Sequence[str], spacing, units,
                 transform: Callable | None = None):
        self.images, self.channel_names = images, list(channel_names)
        self.spacing, self.units = tuple(spacing), tuple(units)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, item: int, index: int | None = None) -> dict:
        return {"image": np.asarray(self.images[item], dtype=np.float32), "channel_names": self.channel_names,
                "spacing": self.spacing, "units": self.units, "index": int(item if index is None else index),
                "source": {"path": "<array>", "item": int(item)}}

    def __getitem__(self, index: int):
        _, item = divmod(int(index), EPOCH_STRIDE)
        sample = self.sample(item, index)
        return self.transform(sample) if self.transform is not None else sample


class ArrayDataModule(TransformReachesDataset, L.LightningDataModule):
    """In-memory images `(N, C, *S)` as a pretraining data module (whole images are the patches).

    Args:
        images: array (N, C, Y, X) or (N, C, Z, Y, X), physical units.
        channel_names: one per channel. spacing / units: per spatial axis (default 1 px).
        batch_size / num_workers / seed: loader settings. name: for the summary.
    """

    def __init__(self, images: np.ndarray, channel_names: Sequence[str], spacing=None, units=None,
                 batch_size: int = 64, num_workers: int = 0, seed: int = 0, name: str = "arrays",
                 stats_items: int = 256):
        super().__init__()
        images = np.asarray(images)
        if images.ndim not in (4, 5) or images.shape[1] != len(channel_names):
            raise ValueError(f"images must be (N, C, *S) with C = {len(channel_names)} channel names, "
                             f"got {images.shape}")
        dims = images.ndim - 2
        self.images, self.name = images, name
        self.batch_size, self.num_workers, self.seed = int(batch_size), int(num_workers), int(seed)
        self.dataset = ArraySamples(images, channel_names, spacing or [1.0] * dims, units or ["px"] * dims)
        self.transform = None
        self.collate_fn: Callable | None = None
        self.patch_size = list(images.shape[2:])
        self.patch_unit = "px"
        step = max(1, len(images) // stats_items)
        self.stats = compute_stats((self.dataset.sample(i) for i in range(0, len(images), step)),
                                   channel_names, stats_items)

    def setup(self, stage: str | None = None) -> None:
        """Nothing to scan: the images are in memory."""

    @property
    def channel_names(self) -> list[str]:
        return list(self.dataset.channel_names)

    @property
    def spatial_dims(self) -> int:
        return self.images.ndim - 2

    @property
    def spacing(self) -> list[float]:
        return list(self.dataset.spacing)

    @property
    def units(self) -> list[str]:
        return list(self.dataset.units)

    def summary(self) -> dict:
        return {"root": f"<in-memory {self.name}>", "n_images": int(len(self.images)),
                "patches_per_epoch": int(len(self.images)), "formats": {"array": int(len(self.images))},
                "channel_names": self.channel_names, "spacing": self.spacing, "units": self.units,
                "patch_size": self.patch_size, "patch_unit": "px", "image_shape": list(self.images.shape[1:])}

    def train_dataloader(self) -> DataLoader:
        trainer = getattr(self, "trainer", None)
        sampler = EpochSampler(len(self.dataset), shuffle=True, seed=self.seed,
                               rank=trainer.global_rank if trainer is not None else None,
                               world_size=trainer.world_size if trainer is not None else None)
        return DataLoader(self.dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          generator=loader_generator(self.seed),
                          collate_fn=self.collate_fn or collate_samples, drop_last=True,
                          persistent_workers=self.num_workers > 0)
