"""Patch dataset: samples, sharding across ranks and workers, pickling, resampling, bad files."""

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from domainssl.data.dataset import (EPOCH_STRIDE, EpochSampler, PatchDataset, collate_samples,
                                    resample_patch)
from domainssl.data.samplers import GridPatchSampler, RandomPatchSampler
from domainssl.io.open import open_image


def test_sample_dict_matches_the_file(tile_records):
    ds = PatchDataset(tile_records, RandomPatchSampler([32, 32]), patches_per_image=2, seed=3)
    assert len(ds) == 48
    s = ds[EPOCH_STRIDE * 1 + 5]
    assert s["image"].dtype == np.float32 and s["image"].shape == (4, 32, 32)
    assert s["channel_names"] == ["B02", "B03", "B04", "B08"] and s["spacing"] == (10.0, 10.0)
    region = tuple(slice(a, b) for a, b in s["source"]["region"])
    np.testing.assert_array_equal(s["image"], open_image(s["source"]["path"]).read(region))
    assert s["mask"].shape == (32, 32) and s["index"] == EPOCH_STRIDE + 5
    # same slot, same epoch -> same patch; another epoch -> (almost surely) another position
    assert ds[EPOCH_STRIDE + 5]["source"] == s["source"]
    assert ds[2 * EPOCH_STRIDE + 5]["source"] != s["source"]


def test_epoch_sampler_shards_without_repeats():
    n, world = 103, 4
    shards = []
    for rank in range(world):
        sampler = EpochSampler(n, seed=1, rank=rank, world_size=world)
        sampler.set_epoch(2)
        shards.append(list(sampler))
    flat = [i for shard in shards for i in shard]
    assert all(len(s) == n // world for s in shards)
    assert len(set(flat)) == len(flat)  # no slot twice across ranks
    assert all(i // EPOCH_STRIDE == 2 for i in flat)
    again = EpochSampler(n, seed=1, rank=0, world_size=world)
    again.set_epoch(2)
    assert list(again) == shards[0]
    again.set_epoch(3)
    assert [i % EPOCH_STRIDE for i in again] != [i % EPOCH_STRIDE for i in shards[0]]


@pytest.mark.parametrize("loop_epoch", [0, 1])
def test_resuming_continues_the_order_whatever_epoch_the_loop_reports(loop_epoch):
    # 16 slots, batches of 4, 3 batches trained. Resumed from a mid-epoch checkpoint the loop
    # says epoch 0; resumed from the one Lightning saves after stopping at max_steps it says 1.
    # Either way the rest is data epoch 0's last batch, then data epoch 1.
    uninterrupted = EpochSampler(16, seed=3)
    orders = []
    for epoch in (0, 1):
        uninterrupted.set_epoch(epoch)
        orders.append(list(uninterrupted))
    resumed = EpochSampler(16, seed=3)
    resumed.resume_at(batches_done=3, batch_size=4, loop_epoch_batches=3)
    resumed.set_epoch(loop_epoch)            # Lightning, at the start of the resumed epoch
    assert list(resumed) == orders[0][12:]
    resumed.set_epoch(loop_epoch + 1)
    assert list(resumed) == orders[1]


def test_shuffle_buffer_keeps_each_image_together_and_every_slot_once(tile_records):
    # 24 images x 8 patches, buffer 16: every slot once per epoch (and per rank shard), the same
    # order for a seed and epoch, and any 16 consecutive slots touch few images (one open each)
    ds = PatchDataset(tile_records, RandomPatchSampler([16, 16]), patches_per_image=8, seed=0)
    images = ds.slot_images()
    assert images.tolist() == [i // 8 for i in range(24 * 8)]
    sampler = EpochSampler(len(ds), seed=3, slot_images=images, buffer=16)
    sampler.set_epoch(1)
    order = [i % EPOCH_STRIDE for i in sampler]
    assert sorted(order) == list(range(len(ds)))
    again = EpochSampler(len(ds), seed=3, slot_images=images, buffer=16)
    again.set_epoch(1)
    assert [i % EPOCH_STRIDE for i in again] == order
    windows = [len(set(images[order[i:i + 16]])) for i in range(0, len(order) - 16, 16)]
    globally = EpochSampler(len(ds), seed=3)
    global_windows = [len(set(images[[i % EPOCH_STRIDE for i in globally][j:j + 16]]))
                      for j in range(0, len(order) - 16, 16)]
    assert max(windows) <= 10 and np.mean(windows) < 0.6 * np.mean(global_windows)
    assert len(set(images[order[:16]])) > 1  # still a mix, not one image per batch
    shards = [list(EpochSampler(len(ds), seed=3, rank=r, world_size=2, slot_images=images, buffer=16))
              for r in range(2)]
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) == len(shards[1]) == len(ds) // 2
    with pytest.raises(ValueError, match="slot_images"):
        EpochSampler(len(ds), buffer=16)


def test_workers_and_ranks_read_each_patch_once(tile_records):
    ds = PatchDataset(tile_records, GridPatchSampler([32, 32]), seed=0)
    assert len(ds) == 24 * 4
    seen = []
    for rank in range(2):
        loader = DataLoader(ds, batch_size=4, num_workers=2,
                            sampler=EpochSampler(len(ds), seed=0, rank=rank, world_size=2),
                            collate_fn=collate_samples)
        for batch in loader:
            assert batch["image"].shape == (4, 4, 32, 32)
            seen += [(s["path"], tuple(map(tuple, s["region"]))) for s in batch["source"]]
    assert len(seen) == len(set(seen)) == len(ds)


def test_dataset_pickles_without_open_files(tile_records):
    ds = PatchDataset(tile_records, RandomPatchSampler([16, 16]))
    ds[0]
    assert ds._open
    clone = pickle.loads(pickle.dumps(ds))
    assert not clone._open
    np.testing.assert_array_equal(clone[0]["image"], ds[0]["image"])


def test_unreadable_file_is_skipped_and_counted(tile_records, tmp_path):
    bad = dict(tile_records[0], path=str(tmp_path / "gone.tif"))
    ds = PatchDataset([bad] + tile_records[1:3], RandomPatchSampler([16, 16]), seed=0)
    with pytest.warns(UserWarning, match="gone.tif"):
        s = ds[0]
    assert ds.read_errors == 1 and s["source"]["path"] == tile_records[1]["path"]
    assert len(ds.take_skipped()) == 1 and ds.take_skipped() == []


def test_a_replaced_patch_counts_once_however_many_slots_were_tried(tile_records, tmp_path):
    # 4 patches per image: slots 0 and 1 fail on the broken image and read image 1 instead; after
    # its second failure the broken image's other slots go to image 1 without reading it again
    bad = dict(tile_records[0], path=str(tmp_path / "gone.tif"))
    ds = PatchDataset([bad] + tile_records[1:3], RandomPatchSampler([16, 16]), patches_per_image=4, seed=0)
    with pytest.warns(UserWarning, match="gone.tif") as caught:
        samples = [ds[i] for i in range(4)]  # the broken image's four slots
    assert all(s["source"]["path"] == tile_records[1]["path"] for s in samples)
    # the same positions as image 1's own slots 4-7: deterministic replacements
    for i, s in enumerate(samples):
        np.testing.assert_array_equal(s["image"], ds[4 + i]["image"])
    assert ds.read_errors == 2 and len([w for w in caught if "gone.tif" in str(w.message)]) == 2
    assert "failed twice" in str(caught[-1].message)
    skipped = ds.take_skipped()
    assert len(skipped) == 4 and all("gone.tif" in line for line in skipped)  # replaced patches


@pytest.mark.parametrize("per_image", [1, 16])
def test_an_unreadable_image_does_not_stop_a_run_however_many_patches_it_has(tile_records, tmp_path,
                                                                             per_image):
    # more patches per image than retries: every slot of the broken image is replaced
    bad = dict(tile_records[1], path=str(tmp_path / "gone.tif"))
    records = [tile_records[0], bad, tile_records[2]]
    ds = PatchDataset(records, RandomPatchSampler([16, 16]), patches_per_image=per_image, seed=0,
                      max_retries=2)
    with pytest.warns(UserWarning, match="gone.tif"):
        paths = [ds[i]["source"]["path"] for i in range(len(ds))]
    assert paths.count(tile_records[2]["path"]) == 2 * per_image and "gone.tif" not in str(paths)
    assert ds.read_errors == min(2, per_image) and len(ds.take_skipped()) == per_image


def test_a_passing_read_fault_costs_one_patch_not_the_image(tile_records, monkeypatch):
    # one failed read (a network file system's hiccup): the image's later patches are read
    ds = PatchDataset(tile_records[:2], RandomPatchSampler([16, 16]), patches_per_image=4, seed=0)
    real, calls = ds._load, []

    def flaky(epoch, slot, row=None):
        calls.append(slot)
        if len(calls) == 1:
            raise OSError("EIO: input/output error")
        return real(epoch, slot, row)

    monkeypatch.setattr(ds, "_load", flaky)
    with pytest.warns(UserWarning, match="replaced by another image's"):
        first = ds[0]
    assert first["source"]["path"] == tile_records[1]["path"]
    assert [ds[i]["source"]["path"] for i in (1, 2, 3)] == [tile_records[0]["path"]] * 3
    assert ds.read_errors == 1


def test_an_archive_of_unreadable_images_is_one_clear_error(tile_records, tmp_path):
    from domainssl.data.errors import DataSetupError

    records = [dict(r, path=str(tmp_path / f"gone{i}.tif")) for i, r in enumerate(tile_records[:3])]
    ds = PatchDataset(records, RandomPatchSampler([16, 16]), patches_per_image=4, max_retries=8)
    with pytest.warns(UserWarning), pytest.raises(DataSetupError, match="none of the 3 images"):
        ds[5]


def test_resample_keeps_extent_and_values():
    data = np.ones((2, 10, 20), np.float32) * np.array([3.0, 7.0], np.float32)[:, None, None]
    mask = np.ones((10, 20), bool)
    out, m, spacing = resample_patch(data, mask, (2.0, 1.0), (20, 20))
    assert out.shape == (2, 20, 20) and m.shape == (20, 20)
    np.testing.assert_allclose(out[:, 5, 5], [3.0, 7.0])
    assert spacing == pytest.approx((1.0, 1.0))


def test_collate_refuses_mixed_shapes():
    a = {"image": np.zeros((1, 4, 4), np.float32), "channel_names": ["x"], "spacing": (1, 1),
         "source": {}, "index": 0}
    b = dict(a, image=np.zeros((1, 5, 4), np.float32))
    with pytest.raises(ValueError, match="target_shape"):
        collate_samples([a, b])
    batch = collate_samples([dict(a, label=1), dict(a, label=0)])
    assert batch["label"].tolist() == [1, 0] and batch["image"].dtype == torch.float32


def test_open_record_repeats_no_warning_the_scan_recorded(monkeypatch):
    # Statistics, training and pictures each reopen a file: what the scan already reported
    # (record["warnings"]) is not raised again, a new warning still is.
    import warnings

    from domainssl.data import dataset as dataset_mod

    def fake_open(path, series=None, level=0):
        warnings.warn(f"{path}: uneven slice spacing", UserWarning)
        warnings.warn(f"{path}: something new", UserWarning)
        return "image"

    monkeypatch.setattr(dataset_mod, "open_image", fake_open)
    record = {"path": "/a/ct", "warnings": ["/a/ct: uneven slice spacing"]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert dataset_mod.open_record(record) == "image"
    assert [str(w.message) for w in caught] == ["/a/ct: something new"]
    assert caught[0].filename == __file__  # points at the caller, not at open_record


def test_reading_the_real_ct_series_repeats_no_scan_warning(shared_data, tmp_path):
    import warnings

    from domainssl.data.dataset import open_record
    from domainssl.io.scan import read_manifest, scan_archive

    scan_archive(shared_data / "dicom" / "ct_head_series_ge", tmp_path / "m.jsonl", jobs=0)
    (record,) = read_manifest(tmp_path / "m.jsonl")
    assert len(record["warnings"]) == 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = open_record(record)
    assert caught == [] and image.shape[-3:] == tuple(record["shape"][-3:])


def test_open_record_leaves_pythons_once_per_location_warnings_alone(tile_records, tmp_path):
    # catching warnings around every open reset Python's "already shown" registries, so a
    # warning meant to show once per line showed after every file opened
    import subprocess
    import sys

    script = ("import sys, warnings\n"
              "from domainssl.data.dataset import open_record\n"
              f"rec = {{'path': {tile_records[0]['path']!r}}}\n"
              "def noisy():\n"
              "    warnings.warn('same message from the same line', UserWarning)\n"
              "for i in range(3):\n"
              "    noisy()\n"
              "    open_record(rec)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("same message from the same line") == 1, proc.stderr


def test_chosen_channels_are_read_in_the_order_asked(tile_records):
    from domainssl.data.consistency import select_consistent

    chosen, _ = select_consistent(tile_records[:2], channels=["B08", "B04"])
    full = PatchDataset(tile_records[:2], RandomPatchSampler([16, 16]), seed=3)
    some = PatchDataset(chosen, RandomPatchSampler([16, 16]), seed=3)
    for i in range(2):
        a, b = full[i], some[i]
        assert b["channel_names"] == ["B08", "B04"] and b["image"].shape == (2, 16, 16)
        np.testing.assert_array_equal(b["image"], a["image"][[3, 2]])


def test_chosen_channels_have_their_own_nodata_mask(tmp_path):
    # band C is all nodata; choosing B and A must give valid patches (the mask of every band in
    # the file made every patch invalid and the statistics zero)
    import rasterio
    from rasterio.transform import from_origin

    from domainssl.data.consistency import select_consistent
    from domainssl.io.scan import read_manifest, scan_archive

    data = np.stack([np.full((32, 32), 5, np.uint16), np.full((32, 32), 7, np.uint16),
                     np.zeros((32, 32), np.uint16)])
    path = tmp_path / "abc.tif"
    with rasterio.open(path, "w", driver="GTiff", width=32, height=32, count=3, dtype="uint16",
                       nodata=0, crs="EPSG:32629", transform=from_origin(0, 320, 10, 10)) as ds:
        ds.write(data)
        ds.descriptions = ("A", "B", "C")
    scan_archive(path, tmp_path / "m.jsonl", jobs=0)
    chosen, _ = select_consistent(list(read_manifest(tmp_path / "m.jsonl")), channels=["B", "A"])
    ds = PatchDataset(chosen, RandomPatchSampler([16, 16], min_valid=0.5), patches_per_image=3, seed=0)
    for i in range(3):
        s = ds[i]
        assert s["valid"] and s["mask"].all() and s["channel_names"] == ["B", "A"]
        assert s["image"][:, 0, 0].tolist() == [7.0, 5.0]


@pytest.mark.parametrize("stored", ["band_folder", "one_file"])
def test_chosen_channels_read_only_what_they_need(shared_data, stored):
    # data.channels: [B12, B02, B03] of Sentinel-2. A band folder (a file per band) reads the two
    # runs B02..B03 and B12, not the nine files between them; the 12-band file, whose bands share
    # their tiles, reads its span once. Either way the values are the chosen bands, in order.
    from domainssl.data.dataset import ChannelView, adjacent_runs

    geo = shared_data / "geotiff"
    image = open_image(geo / "s2_l2a_T29RKH_20200219_cogs" if stored == "band_folder"
                       else geo / "s2_l2a_T29RKH_20200219_12band_200m_cog.tif")
    index = [image.channel_names.index(n) for n in ("B12", "B02", "B03")]
    view = ChannelView(image, index)
    reads = []
    inner_read = image.read
    image.read = lambda region=None: reads.append(region[0]) or inner_read(region)
    region = (slice(None), slice(100, 140), slice(60, 92))
    patch = view.read(region)
    image.read = inner_read
    full = image.read(region)
    np.testing.assert_array_equal(patch, full[index])
    assert view.channel_names == ["B12", "B02", "B03"] and patch.shape == (3, 40, 32)
    spans = [(r.start, r.stop) for r in reads]
    assert spans == (adjacent_runs(index) if stored == "band_folder" else [(min(index), max(index) + 1)])
    assert image.channels_apart == (stored == "band_folder")
    assert adjacent_runs([7, 3, 1, 2, 3]) == [(1, 4), (7, 8)]
