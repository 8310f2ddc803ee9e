"""PatchDataModule: scan -> consistent records -> stats -> batches."""

import json

import pytest
import torch

from domainssl.data.datamodule import PatchDataModule, select_consistent


def test_datamodule_on_mixed_archive(demo_archive, tmp_path):
    dm = PatchDataModule(root=demo_archive["root"], patch_size=[32, 32], batch_size=8,
                         patches_per_image=2, work_dir=str(tmp_path), scan_jobs=0, stats_patches=16)
    with pytest.warns(UserWarning, match="left out"):
        dm.setup()
    # the 2D 4-band tiles are the majority; DICOM/NIfTI/OME-Zarr are left out, not mixed in
    assert dm.channel_names == ["B02", "B03", "B04", "B08"] and dm.spatial_dims == 2
    assert dm.summary()["n_images"] == 24 and dm.summary()["n_rejected_by_scan"] == 1
    assert dm.spacing == [10.0, 10.0] and dm.units == ["m", "m"]
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["channel_names"] == dm.channel_names and all(m > 100 for m in stats["mean"])
    batches = list(dm.train_dataloader())
    assert len(batches) == 48 // 8
    assert batches[0]["image"].shape == (8, 4, 32, 32) and batches[0]["image"].dtype == torch.float32


def test_select_consistent_filters():
    recs = [{"format": "geotiff", "axes": "CYX", "channel_names": ["a", "b"]}] * 3 + \
           [{"format": "geotiff", "axes": "CYX", "channel_names": ["a"]}] + \
           [{"format": "nifti", "axes": "CZYX", "channel_names": ["t1"]}]
    kept, dropped = select_consistent(recs)
    assert len(kept) == 3 and sum(dropped.values()) == 2
    kept, dropped = select_consistent(recs, spatial_dims=3)
    assert [r["format"] for r in kept] == ["nifti"]
    kept, _ = select_consistent(recs, channels=["a"])
    assert len(kept) == 1


def test_too_few_patches_for_a_batch_is_explained(demo_archive, tmp_path):
    dm = PatchDataModule(root=demo_archive["tiles"], patch_size=[16, 16], batch_size=64,
                         work_dir=str(tmp_path), scan_jobs=0, stats_patches=4)
    dm.setup()
    with pytest.raises(ValueError, match="patches_per_image"):
        dm.train_dataloader()
