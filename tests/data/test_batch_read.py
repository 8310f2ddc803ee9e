"""The batch read (`PatchDataset.__getitems__`, what DataLoader calls) gives exactly the samples
and batches of the per-item path, on every format of the demo archive."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from domainssl.data.dataset import EPOCH_STRIDE, EpochSampler, PatchDataset, collate_samples
from domainssl.data.samplers import GridPatchSampler, RandomPatchSampler
from domainssl.io.scan import read_manifest, scan_archive
from domainssl.transforms import collate_patches


@pytest.fixture(scope="module")
def records_by_format(demo_archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "all.jsonl"
    scan_archive(demo_archive["root"], out, jobs=0)
    by_format: dict = {}
    for rec in read_manifest(out):
        by_format.setdefault(rec["format"], []).append(rec)
    return by_format


def _assert_same_sample(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape
            np.testing.assert_array_equal(a[key], b[key])
        else:
            assert a[key] == b[key], key


def _assert_same_batch(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert a[key].dtype == b[key].dtype
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("fmt, size", [("geotiff", [24, 24]), ("dicom", [4, 16, 16]),
                                       ("nifti", [8, 8, 8]), ("ome-zarr", [16, 16])])
def test_batch_read_equals_item_reads(records_by_format, fmt, size):
    records = records_by_format[fmt]
    ds = PatchDataset(records, RandomPatchSampler(size), patches_per_image=6, seed=5)
    indices = list(EpochSampler(len(ds), seed=2))[:5]
    batch = ds.__getitems__(indices)
    singles = [ds[i] for i in indices]
    for got, want in zip(batch, singles):
        _assert_same_sample(got, want)
    # rows of one float32 array, which collation hands on without a copy
    rows = batch[0]["image"].base
    assert all(s["image"].base is rows for s in batch)
    collated = collate_samples(batch)
    assert collated["image"].data_ptr() == rows.ctypes.data
    _assert_same_batch(collated, collate_samples(singles))
    # the GPU-view path's collation hands the rows on too, with the same values
    gpu = collate_patches(batch)
    assert gpu["image"].data_ptr() == rows.ctypes.data
    torch.testing.assert_close(gpu["image"], collate_patches(singles)["image"], rtol=0, atol=0)


def test_geotiff_masks_and_dataloader_batches_match(records_by_format):
    records = records_by_format["geotiff"]
    ds = PatchDataset(records, RandomPatchSampler([40, 40]), patches_per_image=4, seed=0)
    sampler = EpochSampler(len(ds), seed=0)
    sampler.set_epoch(3)
    loader = DataLoader(ds, batch_size=8, sampler=sampler, collate_fn=collate_samples, drop_last=True)
    order = list(sampler)
    for b, batch in enumerate(loader):
        want = collate_samples([ds[i] for i in order[b * 8:(b + 1) * 8]])
        _assert_same_batch(batch, want)
    # the demo tiles have nodata borders: the mask must carry them, not be all True
    masks = torch.cat([batch["mask"] for batch in loader])
    assert masks.dtype == torch.bool and not masks.all()


def test_batch_read_with_grid_target_shape_and_transform(records_by_format):
    records = records_by_format["geotiff"][:3]
    for ds in (PatchDataset(records, GridPatchSampler([32, 32]), seed=0),
               PatchDataset(records, RandomPatchSampler([30, 30]), patches_per_image=3, seed=1,
                            target_shape=[16, 16]),
               PatchDataset(records, RandomPatchSampler([16, 16]), patches_per_image=3,
                            transform=lambda s: {"twice": s["image"] * 2, "index": s["index"]})):
        indices = [EPOCH_STRIDE + i for i in range(len(ds))]
        for got, want in zip(ds.__getitems__(indices), [ds[i] for i in indices]):
            _assert_same_sample(got, want)


def test_patches_of_another_shape_get_their_own_array(records_by_format, tmp_path):
    from domainssl.data.synthetic import write_geotiff
    from domainssl.io.open import open_image

    # a 20x20 image among 64x64 tiles: its patch is clipped to 20x20 and cannot join the batch array
    write_geotiff(tmp_path / "small.tif", np.arange(4 * 20 * 20, dtype=np.uint16).reshape(4, 20, 20) + 1)
    small = dict(open_image(tmp_path / "small.tif").describe(), status="ok")
    ds = PatchDataset([records_by_format["geotiff"][0], small], RandomPatchSampler([24, 24]))
    samples = ds.__getitems__([0, 1])
    assert samples[0]["image"].shape == (4, 24, 24) and samples[1]["image"].shape == (4, 20, 20)
    assert samples[1]["image"].base is not samples[0]["image"].base
    _assert_same_sample(samples[1], ds[1])
    with pytest.raises(ValueError, match="target_shape"):
        collate_samples(samples)


def test_unreadable_file_in_a_batch_is_skipped_like_an_item(records_by_format, tmp_path):
    tiles = records_by_format["geotiff"]
    bad = dict(tiles[0], path=str(tmp_path / "gone.tif"))
    ds = PatchDataset([bad] + tiles[1:3], RandomPatchSampler([16, 16]), seed=0)
    with pytest.warns(UserWarning, match="gone.tif"):
        batch = ds.__getitems__([0, 1, 2])
    assert ds.read_errors == 1
    assert [s["source"]["path"] for s in batch] == [tiles[1]["path"], tiles[1]["path"], tiles[2]["path"]]
    _assert_same_batch(collate_samples(batch), collate_samples([ds[1], ds[1], ds[2]]))


def test_collate_copies_unless_the_images_are_exactly_one_arrays_rows():
    base = np.empty((3, 2, 4, 4), dtype=np.float32)  # owns its memory, as the batch read's array
    base[...] = np.arange(base.size).reshape(base.shape)
    meta = {"channel_names": ["a", "b"], "spacing": (1.0, 1.0), "source": {}, "index": 0}
    rows = collate_samples([dict(meta, image=base[i]) for i in range(3)])
    assert rows["image"].data_ptr() == base.ctypes.data  # handed on, not copied
    for images in ([base[1], base[0], base[2]], [base[0], base[1]], [base[0], base[1], base[2].copy()],
                   [base[0][:, ::-1], base[1], base[2]]):
        batch = collate_samples([dict(meta, image=im) for im in images])
        assert batch["image"].data_ptr() != base.ctypes.data
        np.testing.assert_array_equal(batch["image"].numpy(), np.stack(images))
