"""The random patch position of a slot is a function of (seed, epoch, item) alone: the stream of
`slot_generator`, whatever the batch, the worker count or what was read before."""

import numpy as np
import pytest
from torch.utils.data import DataLoader

from domainssl.data.dataset import (EPOCH_STRIDE, EpochSampler, PatchDataset, collate_samples,
                                    slot_generator)
from domainssl.data.samplers import RandomPatchSampler, region_for
from domainssl.io.open import open_image


def test_slot_generator_is_philox_keyed_by_seed_and_index():
    index = 3 * EPOCH_STRIDE + 17
    want = np.random.Generator(np.random.Philox(key=[index, 11])).integers(0, 1 << 30, 6)
    np.testing.assert_array_equal(slot_generator(11, index).integers(0, 1 << 30, 6), want)
    assert not np.array_equal(slot_generator(12, index).integers(0, 1 << 30, 6), want)
    assert not np.array_equal(slot_generator(11, index + 1).integers(0, 1 << 30, 6), want)


def test_patch_position_is_the_slot_generators_first_corner(tile_records):
    sampler = RandomPatchSampler([16, 24])
    ds = PatchDataset(tile_records, sampler, patches_per_image=3, seed=7)
    for epoch, item in [(0, 0), (1, 5), (4, len(ds) - 1), (2, 5)]:
        s = ds[epoch * EPOCH_STRIDE + item]
        image = open_image(tile_records[item // 3]["path"])
        corner = next(sampler.corners(image, slot_generator(7, epoch * EPOCH_STRIDE + item)))
        want = region_for(image, corner, (16, 24))
        assert s["source"]["region"] == [[0, 4]] + [[sl.start, sl.stop] for sl in want[1:]]


def test_positions_do_not_depend_on_batch_workers_or_read_order(tile_records):
    def sources(ds, batch_size, workers, epoch=2):
        sampler = EpochSampler(len(ds), seed=1)
        sampler.set_epoch(epoch)
        loader = DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=workers,
                            collate_fn=collate_samples)
        return {i: src["region"] for b in loader for i, src in zip(b["index"], b["source"])}

    ds = PatchDataset(tile_records, RandomPatchSampler([16, 16]), patches_per_image=2, seed=3)
    serial = sources(ds, 4, 0)
    assert len(serial) == len(ds)
    assert sources(ds, 5, 2) == serial
    # a fresh dataset reading one slot first, and reading it again after others: the same region
    some = sorted(serial)[7]
    fresh = PatchDataset(tile_records, RandomPatchSampler([16, 16]), patches_per_image=2, seed=3)
    assert fresh[some]["source"]["region"] == serial[some]
    fresh.__getitems__(sorted(serial)[:5])
    assert fresh[some]["source"]["region"] == serial[some]
    other_epoch = sources(ds, 4, 0, epoch=3)
    assert [r for _, r in sorted(other_epoch.items())] != [r for _, r in sorted(serial.items())]


def test_seed_out_of_range_is_refused(tile_records):
    with pytest.raises(ValueError, match="seed"):
        PatchDataset(tile_records, RandomPatchSampler([16, 16]), seed=-1)
    with pytest.raises(ValueError, match="seed"):
        PatchDataset(tile_records, RandomPatchSampler([16, 16]), seed=2 ** 64)
