"""`PatchDataModule`: archive (or manifest) -> patches -> batches, for Lightning pretraining.

What a recipe's `data:` section configures. Setup scans the archive when no manifest is
given, keeps the images that agree with each other (axes, channel names), computes
per-channel statistics over a sample of patches and builds the patch dataset; the train
loader shards by rank (`EpochSampler`) and by worker (DataLoader).
"""

from __future__ import annotations

import statistics
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader

from .errors import DataSetupError
from ..io.scan import read_manifest, scan_archive
from .consistency import left_out_message, mixture_messages, record_key, select_consistent
from .dataset import EpochSampler, PatchDataset, collate_samples, loader_generator
from .samplers import GridPatchSampler, RandomPatchSampler
from .stats import compute_stats, load_stats, save_stats


class ReportSkippedReads:
    """Collation that also hands on the reads the dataset skipped while loading the batch, as
    batch["read_skips"] (a list of "path: reason"; the key is absent when none was skipped), so
    that the training process counts them (a DataLoader worker's dataset is its own copy)."""

    def __init__(self, collate_fn: Callable, dataset):
        self.collate_fn, self.dataset = collate_fn, dataset

    def __getstate__(self):
        return {"collate_fn": self.collate_fn, "dataset": None}  # a worker has its own dataset

    def __call__(self, samples):
        batch = self.collate_fn(samples)
        info = torch.utils.data.get_worker_info()
        dataset = info.dataset if info is not None else self.dataset
        skipped = dataset.take_skipped() if hasattr(dataset, "take_skipped") else []
        if skipped and isinstance(batch, dict):
            batch["read_skips"] = skipped
        return batch


class TransformReachesDataset:
    """`transform`: the per-sample transform applied in the loader's workers. Views need the
    statistics, known only once the dataset is built: setting it then reaches that dataset."""

    dataset = None

    @property
    def transform(self) -> Callable | None:
        return self.__dict__.get("_transform")

    @transform.setter
    def transform(self, value: Callable | None) -> None:
        self.__dict__["_transform"] = value
        if self.dataset is not None:
            self.dataset.transform = value


class PatchDataModule(TransformReachesDataset, L.LightningDataModule):
    """Patches from an archive for SSL pretraining.

    Args:
        root: archive folder/file/glob to scan (ignored when `manifest` is given).
        manifest: manifest JSONL from `domainssl scan`.
        patch_size: patch size per spatial axis (in `patch_unit`), e.g. [96, 96, 96] or [64, 64].
        patch_unit: "px" or a physical unit ("mm", "m", "µm") matching the images' units.
        target_shape: resample patches to this shape (required with physical patch sizes
            over images of different spacing).
        batch_size / num_workers: DataLoader settings (per rank).
        patches_per_image: random patches per image per epoch.
        shuffle_buffer: 0 shuffles all patch slots; N > 0 reads images in random order through a
            shuffle buffer of N slots, so each is opened about once per epoch per worker (see
            `EpochSampler`; for archives of slow-to-open images such as DICOM series).
        grid: cover every image with a grid of patches instead of random positions.
        min_valid: minimum fraction of valid (non-nodata) pixels in a patch.
        background: optional [threshold, min_fraction] rule on the first channel.
        channels / spatial_dims / formats: keep only matching images.
        seed: patch positions and shuffling.
        stats: a statistics JSON path, or None to compute over `stats_patches` patches.
        work_dir: where the manifest (when scanned) and stats.json are written.
        scan_jobs: worker processes for the scan.
        transform: callable(sample) applied in workers (e.g. a CPU view generator); when None,
            batches carry raw patches (`image`) for a GPU view module.
        collate_fn: batch collation (default `collate_samples`).
    """

    def __init__(self, root: str | None = None, manifest: str | None = None,
                 patch_size: Sequence[float] = (64, 64), patch_unit: str = "px",
                 target_shape: Sequence[int] | None = None, batch_size: int = 32,
                 num_workers: int = 0, patches_per_image: int = 1, grid: bool = False, shuffle_buffer: int = 0,
                 min_valid: float = 0.0, background: Sequence[float] | None = None,
                 channels: Sequence[str] | None = None, spatial_dims: int | None = None,
                 formats: Sequence[str] | None = None, seed: int = 0, stats: str | None = None,
                 stats_patches: int = 128, work_dir: str | None = None, scan_jobs: int | None = None,
                 transform: Callable | None = None, collate_fn: Callable | None = None):
        super().__init__()
        if root is None and manifest is None:
            raise DataSetupError("data needs `root` (an archive to scan) or `manifest` (from domainssl scan)")
        self.root, self.manifest = root, manifest
        self.patch_size, self.patch_unit = list(patch_size), patch_unit
        self.target_shape = list(target_shape) if target_shape else None
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.patches_per_image, self.grid = int(patches_per_image), bool(grid)
        self.shuffle_buffer = int(shuffle_buffer)
        self.min_valid = float(min_valid)
        self.background = tuple(background) if background else None
        self.channels, self.spatial_dims_filter, self.formats = channels, spatial_dims, formats
        self.seed, self.stats_path, self.stats_patches = int(seed), stats, int(stats_patches)
        self.work_dir = Path(work_dir) if work_dir else None
        self.scan_jobs = scan_jobs
        self.dataset: PatchDataset | None = None
        self.transform, self.collate_fn = transform, collate_fn
        self.records: list[dict] = []
        self.dropped: dict = {}
        self.rejected = 0
        self.stats: dict | None = None

    # -- set-up ------------------------------------------------------------
    def _manifest_path(self) -> str:
        if self.manifest:
            return self.manifest
        out = (self.work_dir or Path(".")) / "manifest.jsonl"
        summary = scan_archive(self.root, out, jobs=self.scan_jobs)
        print(summary, flush=True)
        self.manifest = str(out)
        return self.manifest

    def _sampler(self):
        if self.grid:
            return GridPatchSampler(self.patch_size, unit=self.patch_unit, min_valid=self.min_valid)
        return RandomPatchSampler(self.patch_size, unit=self.patch_unit, min_valid=self.min_valid,
                                  background=self.background)

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        manifest = self._manifest_path()
        all_records = list(read_manifest(manifest, status=None))
        # A parallel scan writes records as they finish: sorted, the same archive gives the same
        # dataset indices, hence the same patches, statistics and run under one seed.
        ok = sorted((r for r in all_records if r.get("status") == "ok"), key=record_key)
        self.rejected = len(all_records) - len(ok)
        self.records, self.dropped = select_consistent(ok, self.channels, self.spatial_dims_filter,
                                                       self.formats)
        if self.dropped:
            warnings.warn(left_out_message(self.records, self.dropped), stacklevel=2)
        for mixed in mixture_messages(self.records, self.patch_size, self.patch_unit):
            warnings.warn(mixed, stacklevel=2)
        if not all_records:
            raise DataSetupError(f"{self.root or manifest}: the scan found no image files there (DICOM, NIfTI, "
                                 "GeoTIFF, TIFF/OME-TIFF, OME-Zarr, PNG/JPEG); point data.root at the archive")
        if not self.records:
            left_out = "; ".join(f"{n} x {reason}" for reason, n in self.dropped.items()) or "none"
            raise DataSetupError(f"{manifest}: no usable image matches the data settings "
                                 f"({self.rejected} rejected by the scan; left out: {left_out})")
        plain = PatchDataset(self.records, self._sampler(), self.patches_per_image, self.seed,
                             self.target_shape, transform=None)
        if self.stats_path:
            self.stats = load_stats(self.stats_path)
        else:
            step = max(1, len(plain) // self.stats_patches)
            self.stats = compute_stats((plain[i] for i in range(0, len(plain), step)),
                                       self.channel_names, self.stats_patches)
            if self.work_dir:
                save_stats(self.stats, self.work_dir / "stats.json")
        plain.close_all()
        self.dataset = PatchDataset(self.records, self._sampler(), self.patches_per_image, self.seed,
                                    self.target_shape, transform=self.transform)

    # -- facts for views, models and the encoder card ------------------------
    @property
    def channel_names(self) -> list[str]:
        return list(self.records[0]["channel_names"])

    @property
    def spatial_dims(self) -> int:
        return len(self.records[0]["axes"]) - 1

    def _unit_group(self) -> tuple[list[str], list[dict]]:
        """The spacing units most images share (calibrated ones first on a tie) and those images:
        a median over spacings in px and µm together means nothing."""
        def units_of(r):
            return tuple(r.get("units") or ["px"] * self.spatial_dims)

        counts = Counter(units_of(r) for r in self.records)
        best = max(counts, key=lambda u: (counts[u], "px" not in u))
        return list(best), [r for r in self.records if units_of(r) == best]

    @property
    def units(self) -> list[str]:
        """Spacing units per spatial axis, those most images share."""
        return self._unit_group()[0]

    @property
    def spacing(self) -> list[float]:
        """Median pixel spacing over the images in `units` (per spatial axis)."""
        _, group = self._unit_group()
        return [statistics.median(r["spacing"][i] for r in group) for i in range(self.spatial_dims)]

    def _value_units(self) -> list[str]:
        units = {str((r.get("meta") or {}).get("value_unit") or "not declared") for r in self.records}
        return [] if units == {"not declared"} else sorted(units)

    def summary(self) -> dict:
        """Pretraining data facts for the encoder card's `data` key."""
        return {
            "root": self.root,
            "manifest": self.manifest,
            "n_images": len(self.records),
            "n_rejected_by_scan": self.rejected,
            "left_out": self.dropped,
            "patches_per_epoch": len(self.dataset) if self.dataset else None,
            "formats": dict(Counter(r["format"] for r in self.records)),
            "axes": self.records[0]["axes"],
            "channel_names": self.channel_names,
            "spacing": self.spacing,
            "units": self.units,
            "patch_size": self.patch_size,
            "patch_unit": self.patch_unit,
            "target_shape": self.target_shape,
            # declared value units (HU, reflectance, ...); "not declared" where some images declare
            # one and others none (a mixture the card must not hide: one set of statistics spans both)
            "value_units": self._value_units(),
        }

    # -- loaders -----------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        trainer = getattr(self, "trainer", None)
        rank = trainer.global_rank if trainer is not None else None
        world = trainer.world_size if trainer is not None else None
        sampler = EpochSampler(len(self.dataset), shuffle=True, seed=self.seed, rank=rank, world_size=world,
                               slot_images=self.dataset.slot_images() if self.shuffle_buffer else None,
                               buffer=self.shuffle_buffer)
        if _resuming(trainer):
            progress = trainer.fit_loop.epoch_loop.batch_progress
            sampler.resume_at(progress.total.processed, self.batch_size, progress.current.processed,
                              _batches_per_epoch(trainer, len(sampler) // self.batch_size))
        if len(sampler) < self.batch_size:
            raise DataSetupError(f"{len(sampler)} patches per epoch per rank is less than one batch of "
                                 f"{self.batch_size}: raise data.patches_per_image or lower data.batch_size")
        self.dataset.close_all()  # no open file handle may be inherited by forked workers
        return DataLoader(self.dataset, batch_size=self.batch_size, sampler=sampler,
                          num_workers=self.num_workers, generator=loader_generator(self.seed),
                          collate_fn=ReportSkippedReads(self.collate_fn or collate_samples, self.dataset),
                          drop_last=True, persistent_workers=self.num_workers > 0,
                          pin_memory=torch.cuda.is_available())


def _resuming(trainer) -> bool:
    """True when Lightning has just restored a checkpoint's loop counters (it does so before it
    asks for the train loader). The data order is a function of (seed, data epoch), so the
    batches trained so far say where it continues (`EpochSampler.resume_at`); the sampler holds
    no other state."""
    loop = getattr(trainer, "fit_loop", None) if trainer is not None else None
    return loop is not None and bool(loop.restarting)


def _batches_per_epoch(trainer, full: int) -> int:
    """Batches an epoch trains under the Trainer's `limit_train_batches` (an int, or a fraction
    of `full`, as Lightning counts it)."""
    limit = getattr(trainer, "limit_train_batches", None)
    if limit is None:
        return full
    if isinstance(limit, int):
        return min(full, limit)
    return min(full, int(full * float(limit))) if float(limit) < 1.0 else full
