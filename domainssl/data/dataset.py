"""Patch dataset over a manifest, and the sampler that orders and shards it per epoch.

Design: a map-style dataset whose index encodes `(epoch, item)`, with `item` one of
`len(records) * patches_per_image` patch slots. `EpochSampler` yields those indices, shuffled
per epoch, sharded by distributed rank; DataLoader workers then split the indices among
themselves, so no patch slot is read twice in an epoch across workers or ranks. The random
patch position of a slot comes from `(seed, epoch, item)` only (see `slot_generator`), so runs
are reproducible whatever the number of workers or the batch a slot falls in, and the dataset pickles cleanly for spawn workers (it holds records,
not open files; images are opened lazily per worker and kept in a small LRU).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections import OrderedDict
from functools import partial
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .errors import DataSetupError
from ..io.errors import ImageReadError
from ..io.image import LazyImage
from ..io.open import open_image
from .samplers import GridPatchSampler, RandomPatchSampler

# Index space: one epoch holds at most this many patch slots (index = epoch * STRIDE + item).
EPOCH_STRIDE = 1 << 40


def slot_generator(seed: int, index: int) -> np.random.Generator:
    """The random generator of the patch slot `index` (= epoch * EPOCH_STRIDE + item) under
    `seed`: Philox keyed by `(seed, index)` (key `(seed << 64) | index`), counter 0.

    This defines the streams; `PatchDataset` draws exactly these numbers from one re-keyed
    generator (`_SlotRandom`), which is cheaper than building this one per patch.
    """
    return np.random.Generator(np.random.Philox(key=(int(seed) << 64) | int(index)))


class _SlotRandom:
    """One Generator, re-keyed per slot to give `slot_generator(seed, index)`'s stream.

    Building a Generator per patch costs 15-20 us (numpy seeds every new bit generator through
    a SeedSequence); setting the key and counter of an existing Philox costs ~2 us. A slot's
    draws stay a function of `(seed, index)` alone. The generator returned is valid until the
    next call (samplers draw from it at once and keep nothing), and like the rest of a
    PatchDataset it is not for concurrent use by threads; DataLoader workers are processes.
    """

    def __init__(self, seed: int):
        self.seed = int(seed)
        self._bitgen = np.random.Philox(key=0)
        self._generator = np.random.Generator(self._bitgen)
        self._state = self._bitgen.state  # the dict layout Philox's state setter takes

    def __call__(self, index: int) -> np.random.Generator:
        state = self._state
        state["state"]["key"][:] = (int(index), self.seed)  # low word first: (seed << 64) | index
        state["state"]["counter"][:] = 0
        state["buffer_pos"], state["has_uint32"], state["uinteger"] = 4, 0, 0  # nothing buffered
        self._bitgen.state = state
        return self._generator


class ChannelView:
    """Some channels of a lazy image, in a chosen order, read as if they were the whole image
    (`data.channels`): reads, the nodata mask (valid where every chosen channel is valid), the
    samplers' valid-fraction and background tests all see only the chosen channels. Reads take
    the span of channel positions the choice covers, not every channel of the file."""

    def __init__(self, image: LazyImage, index: Sequence[int]) -> None:
        self.inner, self.index = image, [int(i) for i in index]
        self.path, self.axes, self.spacing, self.units = image.path, image.axes, image.spacing, image.units
        self.dtype, self.meta, self.format = image.dtype, image.meta, getattr(image, "format", None)
        self.channel_names = [image.channel_names[i] for i in self.index]
        self.shape = (len(self.index),) + tuple(image.shape[1:])
        self.spatial_dims, self.spatial_shape = image.spatial_dims, tuple(image.shape[1:])

    def _chosen(self, region) -> tuple[list[int], tuple]:
        region = tuple(region) if region is not None else (slice(None),)
        return self.index[region[0]] if isinstance(region[0], slice) else [self.index[region[0]]], region[1:]

    def read(self, region=None) -> np.ndarray:
        chosen, spatial = self._chosen(region)
        # Where channels are stored apart (a band folder, a chunk per channel), B02 and B12 are
        # two reads, not the eleven bands between them; elsewhere one read of the span, since
        # the bands share their tiles and each extra read would decode them again.
        runs = adjacent_runs(chosen) if self.inner.channels_apart else [(min(chosen), max(chosen) + 1)]
        parts = {lo: self.inner.read((slice(lo, hi),) + spatial) for lo, hi in runs}
        where = {c: (lo, c - lo) for lo, hi in runs for c in range(lo, hi)}
        return np.ascontiguousarray(np.stack([parts[where[c][0]][where[c][1]] for c in chosen]))

    def read_mask(self, region=None) -> np.ndarray | None:
        chosen, spatial = self._chosen(region)
        # one mask read per run of adjacent chosen channels (B02..B04 is one read, not three)
        masks = [m for lo, hi in adjacent_runs(chosen)
                 if (m := self.inner.read_mask((slice(lo, hi),) + spatial)) is not None]
        return np.logical_and.reduce(masks) if masks else None

    def normalize_region(self, region):
        _, spatial = self._chosen(region)
        bounds, steps = self.inner.normalize_region((slice(None),) + spatial)
        return [(0, len(self.index))] + bounds[1:], steps

    def close(self) -> None:
        self.inner.close()


def adjacent_runs(channels: Sequence[int]) -> list[tuple[int, int]]:
    """Runs of adjacent channel positions as (start, stop) pairs: [3, 1, 2, 7] -> [(1, 4), (7, 8)]."""
    runs: list[tuple[int, int]] = []
    for c in sorted(set(channels)):
        if runs and runs[-1][1] == c:
            runs[-1] = (runs[-1][0], c + 1)
        else:
            runs.append((c, c + 1))
    return runs


def open_record(record: dict) -> LazyImage:
    """Open the image a manifest record points at (DICOM series and pyramid level included).

    Warnings the scan already recorded for this file (`record["warnings"]`, shown in the scan's
    summary) are not raised again: statistics, training and pictures each reopen a file, and a
    geometry warning per file per pass would bury the messages that are new."""
    known = set(record.get("warnings") or ())
    # catch_warnings resets Python's once-per-location registries: only for records that need it
    catching = warnings.catch_warnings(record=True) if known else contextlib.nullcontext([])
    with catching as caught:
        if known:
            warnings.simplefilter("always")
        image = open_image(record["path"], series=record.get("series"), level=record.get("level") or 0)
    for w in caught:
        if str(w.message) not in known:
            warnings.warn(w.message, stacklevel=2)
    return image


class PatchDataset(Dataset):
    """Random (or grid) patches from the images of a manifest, as sample dicts.

    Args:
        records: manifest records with status "ok" (see `domainssl.io.scan`).
        sampler: a `RandomPatchSampler` (random position per slot and epoch) or a
            `GridPatchSampler` (then every grid patch of every image is one slot).
        patches_per_image: random slots per image per epoch (ignored for grid sampling).
        seed: base seed of patch positions, 0 <= seed < 2**64 (see `slot_generator`).
        target_shape: resample every patch to this spatial shape (needed when patches are
            sized in physical units over images of different spacing, so batches stack).
        transform: optional callable(sample) -> anything (e.g. a view generator).
        max_open: images kept open per worker.
        max_retries: when a patch cannot be read, a patch of another image replaces it
            (deterministically); after this many failed reads in a row for one patch the error
            is raised. An image that fails twice is not read again by this process; every
            failure is warned about and every replaced patch counted (`take_skipped`).

    Each item is a sample dict: `image` float32 (C, *S) in the reader's value units,
    `channel_names`, `spacing`, `units`, `mask` (bool (*S) or absent), `source`
    (path, series, region as [start, stop] per axis), `index` (the slot), and
    `valid` (False when the sampler could not find a patch meeting its nodata/background rule).
    """

    def __init__(self, records: Sequence[dict], sampler, patches_per_image: int = 1, seed: int = 0,
                 target_shape: Sequence[int] | None = None, transform: Callable | None = None,
                 max_open: int = 16, max_retries: int = 8):
        if not records:
            raise DataSetupError("no usable images: the manifest has no record with status 'ok'")
        self.records = list(records)
        self.sampler = sampler
        self.seed = int(seed)
        if not 0 <= self.seed < 2 ** 64:
            raise ValueError(f"seed must be in [0, 2**64), got {seed}")
        self._slot_random = _SlotRandom(self.seed)
        self.target_shape = tuple(target_shape) if target_shape else None
        self.transform = transform
        self.max_open, self.max_retries = int(max_open), int(max_retries)
        self.read_errors = 0  # failed reads in this process
        self._failures: dict[int, int] = {}    # image -> read errors in this process
        self._unreadable: dict[int, str] = {}  # image -> "path: reason", after its second failure
        self._skipped: list[str] = []  # "path: reason" of reads skipped since `take_skipped`
        self._open: OrderedDict = OrderedDict()
        if isinstance(sampler, GridPatchSampler):
            # Grid slots need each image's shape: taken from the manifest, not by opening files.
            self._grid = [(r, reg) for r, rec in enumerate(self.records)
                          for reg in sampler.regions(_HeaderOnly(rec))]
            self.patches_per_image = 1
        else:
            self._grid = None
            self.patches_per_image = int(patches_per_image)

    def __len__(self) -> int:
        return len(self._grid) if self._grid is not None else len(self.records) * self.patches_per_image

    def slot_images(self) -> np.ndarray:
        """The image (record index) of every slot, (len(self),) int: for `EpochSampler`'s buffer."""
        if self._grid is not None:
            return np.array([r for r, _ in self._grid], dtype=np.int64)
        return np.repeat(np.arange(len(self.records), dtype=np.int64), self.patches_per_image)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()  # file handles never cross process boundaries
        return state

    def close_all(self) -> None:
        """Close every image this process holds open."""
        while self._open:
            self._open.popitem()[1].close()

    def _image(self, r: int) -> LazyImage:
        image = self._open.pop(r, None)
        if image is None:
            image = open_record(self.records[r])
            if "channel_index" in self.records[r]:  # data.channels chose some of its channels
                image = ChannelView(image, self.records[r]["channel_index"])
            while len(self._open) >= self.max_open:
                _, old = self._open.popitem(last=False)
                old.close()
        self._open[r] = image
        return image

    def _load(self, epoch: int, item: int, row: Callable | None = None) -> dict:
        """The sample of slot `item` in `epoch`. `row(shape)` may give a float32 array (a row
        of the batch) to write the image into, or None: then the image is a new array."""
        valid = True
        if self._grid is not None:
            r, region = self._grid[item]
            image = self._image(r)
            data = None
        else:
            r = item // self.patches_per_image
            image = self._image(r)
            rng = self._slot_random(epoch * EPOCH_STRIDE + item)
            region, data, valid = self.sampler.sample(image, rng)
        if data is None:
            data = image.read(region)
        record = self.records[r]
        mask = image.read_mask(region)
        bounds, _ = image.normalize_region(region)
        spacing = image.spacing
        if self.target_shape is not None and tuple(data.shape[1:]) != self.target_shape:
            data, mask, spacing = resample_patch(data.astype(np.float32, copy=False), mask, spacing,
                                                 self.target_shape)
        out = row(data.shape) if row is not None else None
        if out is not None:
            # the cast to float32 writes straight into the batch: no per-patch float copy,
            # and collate_samples then needs no stack (same values as astype: unsafe casting).
            # Reading into the float32 row directly (rasterio out=float32, GDAL converting)
            # was measured no faster than read + this cast with GDAL's defaults, and ~25%
            # slower with GTIFF_DIRECT_IO: the reader keeps the stored dtype.
            np.copyto(out, data, casting="unsafe")
            data = out
        else:
            data = data.astype(np.float32, copy=False)
        sample = {
            "image": data,
            "channel_names": list(record["channel_names"]),
            "spacing": tuple(spacing),
            "units": tuple(image.units),
            "source": {"path": image.path, "series": record.get("series"),
                       "region": [list(b) for b in bounds]},
            "index": int(epoch * EPOCH_STRIDE + item),
            "valid": bool(valid),
        }
        if mask is not None:
            sample["mask"] = mask
        if "label" in record:
            sample["label"] = int(record["label"])
        return sample

    def _slot_image(self, slot: int) -> int:
        """The image (record index) that slot `slot` reads from."""
        return self._grid[slot][0] if self._grid is not None else slot // self.patches_per_image

    def _replacement_slot(self, slot: int) -> int:
        """The next slot (cyclic, deterministic) on an image not known to be unreadable: for
        random patches the same position in the next image, for grid patches the next slot of
        another image. A neighbouring slot of the same image would fail again."""
        n = len(self)
        stride = self.patches_per_image if self._grid is None else 1
        for step in range(1, n + 1):
            candidate = (slot + step * stride) % n
            if self._slot_image(candidate) not in self._unreadable:
                return candidate
        return (slot + stride) % n  # every image failed: the read raises again

    def _load_retrying(self, index: int, row: Callable | None = None) -> dict:
        """`_load` of `index`; when its image cannot be read, a patch of another image replaces
        it (up to `max_retries` images tried). An image that failed is not read again by this
        process: the reason is remembered, and its later slots go straight to a replacement."""
        epoch, item = divmod(int(index), EPOCH_STRIDE)
        slot, tried, first_failure = item, 0, None
        while True:
            image = self._slot_image(slot)
            reason = self._unreadable.get(image)
            if reason is None:
                try:
                    sample = self._load(epoch, slot, row)
                except (ImageReadError, OSError) as exc:
                    self.read_errors += 1
                    self._open.pop(image, None)
                    path = self.records[image]["path"]
                    reason = str(exc) if path in str(exc) else f"{path}: {exc}"
                    # A second failure leaves the image out of this worker's reads: a damaged
                    # file would fail on most of its patches; a passing fault (a network file
                    # system's hiccup) costs one patch only.
                    failures = self._failures[image] = self._failures.get(image, 0) + 1
                    if failures >= 2:
                        self._unreadable[image] = reason
                    warnings.warn(f"skipping unreadable patch ({reason}); "
                                  + ("the image failed twice: its patches are replaced by other "
                                     "images' for the rest of the run" if failures >= 2 else
                                     "replaced by another image's")
                                  + f"; {self.read_errors} read errors so far in this worker", stacklevel=3)
                    if tried >= self.max_retries:
                        raise
                    tried += 1
                else:
                    if first_failure is not None:  # one patch replaced, however many were tried
                        self._skipped.append(first_failure)
                    return sample
            first_failure = first_failure or reason
            if len(self._unreadable) == len(self.records):
                raise DataSetupError(f"none of the {len(self.records)} images could be read "
                                     f"(e.g. {first_failure}); check the files, or scan again")
            slot = self._replacement_slot(slot)

    def take_skipped(self) -> list[str]:
        """The reads skipped (as "path: reason") since the last call, in this process; the
        data module's collation hands them to the training step with the batch."""
        skipped, self._skipped = self._skipped, []
        return skipped

    def __getitem__(self, index: int):
        sample = self._load_retrying(index)
        return self.transform(sample) if self.transform is not None else sample

    def __getitems__(self, indices: Sequence[int]) -> list:
        """The samples of `indices`, equal to `[self[i] for i in indices]`; DataLoader calls
        this for a whole batch.

        Patches of the batch's shape are read into rows of one (B, C, *S) float32 array, so
        `collate_samples` hands that array on without stacking (a copy of the batch saved).
        The shape is the first patch's (or `(C, *target_shape)`); a patch of another shape
        gets its own array as in `__getitem__`.
        """
        rows = _BatchRows(len(indices))
        samples = []
        for i, index in enumerate(indices):
            sample = self._load_retrying(index, partial(rows.row, i))
            samples.append(self.transform(sample) if self.transform is not None else sample)
        return samples


class _BatchRows:
    """Rows of one `(n, C, *S)` float32 batch array, allocated when the first patch's shape
    `(C, *S)` is known; a patch of another shape gets no row (None)."""

    def __init__(self, n: int):
        self.n, self.array = n, None

    def row(self, i: int, shape: tuple[int, ...]) -> np.ndarray | None:
        if self.array is None:
            self.array = np.empty((self.n,) + tuple(shape), dtype=np.float32)
        return self.array[i] if self.array.shape[1:] == tuple(shape) else None


class _HeaderOnly:
    """The header facts of a manifest record, enough for samplers that need only shapes."""

    def __init__(self, rec: dict):
        self.path = rec["path"]
        self.shape = tuple(rec["shape"])
        self.spatial_shape = self.shape[1:]
        self.spatial_dims = len(self.shape) - 1
        self.axes = rec.get("axes") or "C" + "ZYX"[-self.spatial_dims:]
        self.spacing = tuple(rec["spacing"])
        self.units = tuple(rec.get("units") or ["px"] * self.spatial_dims)

    def read_mask(self, region):
        return None  # grid filtering by nodata needs the pixels; the dataset skips at read time


def resample_patch(data: np.ndarray, mask: np.ndarray | None, spacing: Sequence[float],
                   target_shape: Sequence[int]):
    """Resample a (C, *S) patch to `target_shape` (linear), its mask by nearest neighbour.

    Returns (data, mask, new spacing per axis), spacing scaled so the physical extent is kept.
    """
    import torch.nn.functional as F

    mode = "bilinear" if len(target_shape) == 2 else "trilinear"
    t = torch.from_numpy(np.ascontiguousarray(data))[None]
    out = F.interpolate(t, size=tuple(target_shape), mode=mode, align_corners=False)[0].numpy()
    if mask is not None:
        m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
        mask = F.interpolate(m, size=tuple(target_shape), mode="nearest")[0, 0].numpy() > 0.5
    new_spacing = tuple(sp * n / t_ for sp, n, t_ in zip(spacing, data.shape[1:], target_shape))
    return out, mask, new_spacing


def loader_generator(seed: int) -> torch.Generator:
    """A DataLoader's own generator. Without one, every new iterator (each epoch, and a resumed
    run's first) draws its worker base seed from the global generator, shifting MAE's masks and
    drop-path: a resumed run would then draw other masks than an uninterrupted one."""
    return torch.Generator().manual_seed(int(seed) % 2**63)


class EpochSampler(Sampler[int]):
    """Indices `epoch * EPOCH_STRIDE + item` for one epoch, shuffled and sharded by rank.

    Args:
        n_items: patch slots per epoch (`len(dataset)`).
        shuffle: shuffle the slots each epoch (seeded by `(seed, epoch)`).
        seed: shuffle seed.
        rank / world_size: this process's shard; default from `torch.distributed` when it is
            initialised, else (0, 1). Each rank gets `floor(n / world_size)` slots (the remainder
            is dropped so ranks stay in step and no slot is read twice).
        slot_images / buffer: with `buffer` > 0 (and `slot_images`, the image of each slot), the
            shuffle reads images in random order, each image's slots together, through a shuffle
            buffer of `buffer` slots: a batch mixes the patches of about buffer / patches-per-image
            images, and each image is opened about once per epoch per worker instead of once per
            patch. For archives whose images are slow to open (DICOM series, .nii.gz) and more
            than a worker keeps open; 0 (default) shuffles all slots.

    When training with Lightning, build the Trainer with `use_distributed_sampler=False`
    (this sampler already shards by rank) and call `set_epoch` (Lightning does).
    """

    def __init__(self, n_items: int, shuffle: bool = True, seed: int = 0,
                 rank: int | None = None, world_size: int | None = None,
                 slot_images: np.ndarray | None = None, buffer: int = 0):
        self.n_items, self.shuffle, self.seed = int(n_items), bool(shuffle), int(seed)
        self.buffer = int(buffer)
        if self.buffer > 0 and (slot_images is None or len(slot_images) != self.n_items):
            raise ValueError("a shuffle buffer needs the image of every slot (slot_images)")
        self.slot_images = None if slot_images is None else np.asarray(slot_images)
        if rank is None or world_size is None:
            dist = torch.distributed
            if dist.is_available() and dist.is_initialized():
                rank, world_size = dist.get_rank(), dist.get_world_size()
            else:
                rank, world_size = 0, 1
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 0
        self.epoch_offset = 0  # data epoch minus the training loop's epoch (see `resume_at`)
        self._resume_epoch: int | None = None
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        """The training loop's epoch; the order is that of data epoch `epoch + epoch_offset`."""
        if self._resume_epoch is not None:  # the loop's first epoch after a resume
            self.epoch_offset = self._resume_epoch - int(epoch)
            self._resume_epoch = None
        self.epoch = int(epoch) + self.epoch_offset

    def resume_at(self, batches_done: int, batch_size: int, loop_epoch_batches: int = 0,
                  per_epoch: int | None = None) -> None:
        """Continue after `batches_done` batches of `batch_size` over the whole run, the loop's
        next epoch being data epoch batches_done // per_epoch with the batches of it already
        trained left out. The loop's own epoch number is not used: Lightning records the next
        epoch's number when a run stops at max_steps mid-epoch, and moves on an epoch when one
        it restores was complete; the first `set_epoch` after this maps whatever epoch the loop
        then starts to that data epoch.

        loop_epoch_batches: the batches Lightning counts as done in the epoch it restores; when
            that epoch is complete while the run's count ends on an epoch boundary, the loop
            finishes it first (with no batches left), then starts the next data epoch.
        per_epoch: batches per epoch (default len // batch_size, as with drop_last; less under
            the Trainer's limit_train_batches).
        """
        per_epoch = max(1, int(per_epoch or len(self) // int(batch_size)))
        data_epoch, done = divmod(int(batches_done), per_epoch)
        if done == 0 and data_epoch > 0 and int(loop_epoch_batches) >= per_epoch:
            data_epoch, done = data_epoch - 1, per_epoch
        self._resume_epoch = self.epoch = data_epoch  # an iterator made before set_epoch sees it
        self.skip_once(done * int(batch_size))

    def skip_once(self, n_indices: int) -> None:
        """Leave out the first `n_indices` of the next epoch's order (a run resumed mid-epoch
        continues where its checkpoint stopped instead of repeating those patches)."""
        self._skip = max(0, int(n_indices))

    def __len__(self) -> int:
        return self.n_items // self.world_size

    def __iter__(self):
        if self.shuffle and self.buffer > 0:
            order = self._buffered_order(np.random.default_rng([self.seed, self.epoch]))
        elif self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n_items)
        else:
            order = np.arange(self.n_items)
        per_rank = len(self)
        mine = order[self.rank * per_rank:(self.rank + 1) * per_rank][self._skip:]
        self._skip = 0
        base = self.epoch * EPOCH_STRIDE
        return iter((base + int(i) for i in mine))


    def _buffered_order(self, rng: np.random.Generator) -> np.ndarray:
        """Images in random order, each image's slots in random order, through a shuffle buffer
        of `self.buffer` slots (each step yields a random buffered slot and refills its place)."""
        by_image = np.argsort(self.slot_images, kind="stable")
        starts = np.searchsorted(self.slot_images[by_image], np.unique(self.slot_images))
        groups = np.split(by_image, starts[1:])
        stream = np.concatenate([rng.permutation(groups[g]) for g in rng.permutation(len(groups))])
        size = min(self.buffer, len(stream))
        buffer, order = list(stream[:size]), []
        picks = rng.integers(0, size, len(stream))  # drawn up front: one random call per epoch
        for i, incoming in enumerate(stream[size:]):
            j = picks[i] % len(buffer)
            order.append(buffer[j])
            buffer[j] = incoming
        order.extend(rng.permutation(np.asarray(buffer, dtype=np.int64)))
        return np.asarray(order, dtype=np.int64)


def collate_samples(samples: list[dict]) -> dict:
    """Stack sample dicts into a batch: `image` (B, C, *S) float tensor, `label` if present,
    `mask` (B, *S) bool if every sample has one, and the per-sample metadata as lists."""
    shapes = {s["image"].shape for s in samples}
    if len(shapes) > 1:
        raise DataSetupError(f"patches of different shapes {sorted(shapes)} cannot be stacked; set "
                             "data.target_shape (resampling) or size patches in pixels")
    images = [s["image"] for s in samples]
    rows = rows_of(images)
    # a batch read by PatchDataset.__getitems__ is already one array: hand it on, no copy
    batch = {"image": torch.from_numpy(rows if rows is not None else np.stack(images))}
    if all("mask" in s for s in samples):
        batch["mask"] = torch.from_numpy(np.stack([s["mask"] for s in samples]))
    if all("label" in s for s in samples):
        batch["label"] = torch.tensor([s["label"] for s in samples], dtype=torch.long)
    for key in ("channel_names", "spacing", "source", "index"):
        batch[key] = [s[key] for s in samples]
    return batch


def rows_of(arrays: Sequence) -> np.ndarray | None:
    """The `(B, *shape)` array whose rows 0..B-1 are exactly `arrays` (in order), else None.

    A batch read by `PatchDataset.__getitems__` is such rows: collate functions hand the
    whole array on (`torch.from_numpy`, no copy) instead of stacking the patches. Anything
    else (other arrays, views with other strides, tensors, a reordered or partial batch) is
    None, and the caller copies.
    """
    base = getattr(arrays[0], "base", None)
    if (not isinstance(base, np.ndarray) or not base.flags.c_contiguous
            or base.shape != (len(arrays),) + arrays[0].shape):
        return None
    start, step = base.ctypes.data, base.strides[0]
    for i, a in enumerate(arrays):
        if (not isinstance(a, np.ndarray) or a.base is not base or a.dtype != base.dtype
                or a.shape != base.shape[1:] or a.strides != base.strides[1:]
                or a.ctypes.data != start + i * step):
            return None
    return base


def n_batches(n_items: int, batch_size: int, world_size: int = 1, drop_last: bool = True) -> int:
    """Batches per epoch on one rank."""
    per_rank = n_items // world_size
    return per_rank // batch_size if drop_last else math.ceil(per_rank / batch_size)


__all__ = ["PatchDataset", "EpochSampler", "RandomPatchSampler", "GridPatchSampler",
           "collate_samples", "open_record", "resample_patch", "rows_of", "slot_generator"]
