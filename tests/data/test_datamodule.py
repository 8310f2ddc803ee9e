"""PatchDataModule: scan -> consistent records -> stats -> batches."""

import json

import pytest
import torch

from domainssl.data.datamodule import PatchDataModule


def test_datamodule_on_mixed_archive(demo_archive, tmp_path):
    dm = PatchDataModule(root=demo_archive["root"], patch_size=[32, 32], batch_size=8,
                         patches_per_image=2, work_dir=str(tmp_path), scan_jobs=0, stats_patches=16)
    with pytest.warns(UserWarning, match="left out") as said:
        dm.setup()
    # one message: what is kept, each reason counted, and how to choose other images
    (left_out,) = [str(w.message) for w in said if "left out" in str(w.message)]
    lines = left_out.splitlines()
    assert lines[0].startswith("data: ") and "24 kept (axes CYX, channels ['B02', 'B03', 'B04', 'B08'])" in lines[0]
    assert sum(int(line.split(" x ")[0]) for line in lines[1:-1]) == int(lines[0].split()[1])
    assert "data.channels" in lines[-1]
    # the 2D 4-band tiles are the majority; DICOM/NIfTI/OME-Zarr are left out, not mixed in
    assert dm.channel_names == ["B02", "B03", "B04", "B08"] and dm.spatial_dims == 2
    assert dm.summary()["n_images"] == 24 and dm.summary()["n_rejected_by_scan"] == 1
    assert dm.spacing == [10.0, 10.0] and dm.units == ["m", "m"]
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["channel_names"] == dm.channel_names and all(m > 100 for m in stats["mean"])
    batches = list(dm.train_dataloader())
    assert len(batches) == 48 // 8
    assert batches[0]["image"].shape == (8, 4, 32, 32) and batches[0]["image"].dtype == torch.float32


def test_a_transform_set_after_setup_reaches_the_batches(demo_archive, tmp_path):
    # views need the archive statistics, known only after setup: set then, they must be used
    from domainssl.transforms import build_views
    from domainssl.transforms.collate import collate_views

    dm = PatchDataModule(root=demo_archive["tiles"], patch_size=[32, 32], batch_size=4,
                         work_dir=str(tmp_path), scan_jobs=0, stats_patches=8)
    dm.setup()
    dm.transform = build_views("multispectral", "two_view", 2, channel_names=dm.channel_names, stats=dm.stats)
    dm.collate_fn = collate_views
    batch = next(iter(dm.train_dataloader()))
    assert len(batch["views"]) == 2 and batch["views"][0].shape == (4, 4, 224, 224)  # the preset's size


def test_too_few_patches_for_a_batch_is_explained(demo_archive, tmp_path):
    dm = PatchDataModule(root=demo_archive["tiles"], patch_size=[16, 16], batch_size=64,
                         work_dir=str(tmp_path), scan_jobs=0, stats_patches=4)
    dm.setup()
    with pytest.raises(ValueError, match="patches_per_image"):
        dm.train_dataloader()



def test_resumed_run_continues_the_data_order(demo_archive, tmp_path):
    """Checkpoint mid-epoch, resume: the patches after the checkpoint are those of an unbroken run."""
    import lightning as L

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 1)
            self.seen = []

        def training_step(self, batch, idx):
            self.seen.append(tuple(batch["index"]))
            return self.lin(batch["image"].mean(dim=(2, 3))).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    def fit(max_steps, ckpt=None, every=None):
        dm = PatchDataModule(root=demo_archive["tiles"], patch_size=[16, 16], batch_size=4,
                             patches_per_image=2, work_dir=str(tmp_path / "w"), scan_jobs=0,
                             stats_patches=4)
        model = Tiny()
        cbs = [L.pytorch.callbacks.ModelCheckpoint(dirpath=str(tmp_path / "ck"), every_n_train_steps=every,
                                                   save_top_k=-1, filename="s{step}")] if every else []
        trainer = L.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, callbacks=cbs,
                            enable_progress_bar=False, enable_model_summary=False,
                            enable_checkpointing=bool(every), use_distributed_sampler=False)
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt)
        return model.seen

    full = fit(8, every=3)  # 12 batches per epoch; checkpoints at steps 3 and 6
    ckpt = next(p for p in (tmp_path / "ck").iterdir() if "6" in p.stem)
    resumed = fit(8, ckpt=str(ckpt))
    assert resumed == full[6:]


class _Crash(Exception):
    pass


@pytest.mark.parametrize("case", ["stop_mid_epoch", "stop_at_epoch_end", "crash_after_epoch_end_checkpoint",
                                  "stop_twice", "limited_epochs"])
def test_every_way_of_stopping_resumes_the_data_order(demo_archive, tmp_path, case):
    # 12 batches per epoch. Lightning's checkpoints disagree on the epoch in these cases (a run
    # stopped at max_steps records the next epoch's number; one restored at a complete epoch
    # moves on): the patches after a resume must still be those of an unbroken run.
    import lightning as L

    seen = []

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 1)

        def training_step(self, batch, idx):
            seen.append(tuple(batch["index"]))
            return self.lin(batch["image"].mean(dim=(2, 3))).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    class CrashAt(L.Callback):
        def __init__(self, step):
            self.step = step

        def on_train_batch_start(self, trainer, module, batch, idx):
            if trainer.global_step == self.step:
                raise _Crash()

    limit = {"limit_train_batches": 5} if case == "limited_epochs" else {}

    def fit(folder, max_steps, resume=False, crash=None, every=None):
        dm = PatchDataModule(root=demo_archive["tiles"], patch_size=[16, 16], batch_size=4,
                             patches_per_image=2, work_dir=str(tmp_path / "w"), scan_jobs=0,
                             stats_patches=4)
        saver = L.pytorch.callbacks.ModelCheckpoint(dirpath=str(folder), every_n_train_steps=every,
                                                    save_last=True, save_top_k=-1 if every else 0,
                                                    enable_version_counter=False)
        trainer = L.Trainer(max_steps=max_steps, max_epochs=-1, accelerator="cpu", logger=False,
                            callbacks=[saver] + ([CrashAt(crash)] if crash else []),
                            enable_progress_bar=False, enable_model_summary=False,
                            use_distributed_sampler=False, **limit)
        try:
            trainer.fit(Tiny(), datamodule=dm, ckpt_path=str(folder / "last.ckpt") if resume else None)
        except _Crash:
            return
        trainer.save_checkpoint(folder / "last.ckpt")  # as a pretraining run does when it ends

    total = 30
    fit(tmp_path / "straight", total)
    unbroken, seen[:] = list(seen), []
    parts = {"stop_mid_epoch": [dict(max_steps=6)], "stop_at_epoch_end": [dict(max_steps=12)],
             "crash_after_epoch_end_checkpoint": [dict(max_steps=total, crash=12, every=12)],
             "stop_twice": [dict(max_steps=5), dict(max_steps=17)], "limited_epochs": [dict(max_steps=7)]}[case]
    for i, part in enumerate(parts):
        fit(tmp_path / "broken", part.pop("max_steps"), resume=i > 0, **part)
    fit(tmp_path / "broken", total, resume=True)
    assert seen == unbroken


def test_real_sentinel2_at_two_resolutions_is_reported(shared_data, tmp_path):
    # the per-band COG folder (100 m grid) and the derived 12-band file (200 m) share their bands
    bands = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
    dm = PatchDataModule(root=str(shared_data / "geotiff"), channels=bands, patch_size=[32, 32],
                         batch_size=2, work_dir=str(tmp_path), scan_jobs=0, stats_patches=8)
    with pytest.warns(UserWarning) as said:
        dm.setup()
    texts = [str(w.message) for w in said]
    assert any("1 at 100 x 100 m, 1 at 200 x 200 m" in t for t in texts), texts
    # the folder's STAC item makes its bands reflectance; the derived file holds digital numbers
    assert any("different units (1 not declared, 1 reflectance)" in t for t in texts), texts
    # the card records the mixture (it said "reflectance" while the statistics spanned DNs too)
    assert dm.summary()["n_images"] == 2 and dm.summary()["value_units"] == ["not declared", "reflectance"]


def test_an_archive_without_images_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    dm = PatchDataModule(root=str(tmp_path / "empty"), patch_size=[32, 32], batch_size=2,
                         work_dir=str(tmp_path / "run"), scan_jobs=0)
    with pytest.raises(ValueError, match=r"empty: the scan found no image files there .*point data.root"):
        dm.setup()


def test_manifest_order_does_not_change_the_data(demo_archive, tmp_path):
    # a parallel scan writes records in the order they finish: the data must not depend on it
    from domainssl.io.scan import scan_archive

    scan_archive(demo_archive["tiles"], tmp_path / "m.jsonl", jobs=0)
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    (tmp_path / "r.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    dms = [PatchDataModule(manifest=str(tmp_path / name), patch_size=[32, 32], batch_size=8, stats_patches=16,
                           work_dir=str(tmp_path / name[0])) for name in ("m.jsonl", "r.jsonl")]
    for dm in dms:
        dm.setup()
    assert [r["path"] for r in dms[0].records] == [r["path"] for r in dms[1].records]
    assert dms[0].stats["mean"] == dms[1].stats["mean"]
    a, b = (next(iter(dm.train_dataloader()))["image"] for dm in dms)
    assert torch.equal(a, b)
