"""Lightning's by-design notices stay out of a run's output; everything else comes through."""

import logging
import warnings

import pytest
import torch

from domainssl.train.lightning_notices import RANK_ZERO_LOGGERS, quiet_lightning

L = pytest.importorskip("lightning")


class _Tiny(L.LightningModule):
    """Has a validation_step (like our kNN monitor) and overrides on_after_batch_transfer."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        pass

    def on_after_batch_transfer(self, batch, dataloader_idx):
        return batch

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Data(L.LightningDataModule):
    def train_dataloader(self):
        data = torch.utils.data.TensorDataset(torch.randn(4, 2))
        return torch.utils.data.DataLoader(data, batch_size=2)


def _fit(tmp_path, quiet: bool) -> tuple[list[str], list[str]]:
    """A 2-step fit the way pretraining sets one up, every warning shown unless `quiet_lightning`
    drops it; returns (warnings, rank-zero log lines)."""
    import contextlib

    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.trainer.connectors import data_connector

    # Lightning says some notices once per process (its WarningCache): forget what an earlier
    # test's fit said, so that this fit says it again.
    data_connector.warning_cache.clear()
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    loggers = [logging.getLogger(name) for name in RANK_ZERO_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)  # other tests quiet lightning.pytorch to ERROR
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with quiet_lightning() if quiet else contextlib.nullcontext():
                trainer = L.Trainer(default_root_dir=str(tmp_path), logger=[CSVLogger(str(tmp_path))], max_steps=2,
                                    log_every_n_steps=50, limit_val_batches=0, enable_progress_bar=False,
                                    enable_model_summary=False, enable_checkpointing=False, accelerator="cpu")
                trainer.fit(_Tiny(), datamodule=_Data())
                warnings.warn("a reader's warning", UserWarning)  # not Lightning's: still shown
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)
    return [str(w.message) for w in caught], lines


NOTICES = ("validation_step", "on_after_batch_transfer", "smaller than the logging interval")


def test_lightning_still_says_these_things_without_the_filter(tmp_path):
    # If Lightning rewords a notice, this fails and the patterns need updating.
    said, lines = _fit(tmp_path, quiet=False)
    for notice in NOTICES:
        assert any(notice in text for text in said), notice
    assert any("litlogger" in line for line in lines)


def test_quiet_lightning_drops_the_by_design_notices_only(tmp_path):
    said, lines = _fit(tmp_path, quiet=True)
    for notice in NOTICES:
        assert not any(notice in text for text in said), notice
    assert not any("litlogger" in line for line in lines)
    assert "a reader's warning" in said
    assert any("GPU available" in line for line in lines)  # the facts still come through


class _Four(L.LightningDataModule):
    """Four batches an epoch, from a DataLoader without state_dict (Lightning: "not resumable")."""

    def train_dataloader(self):
        data = torch.utils.data.TensorDataset(torch.randn(4, 2))
        return torch.utils.data.DataLoader(data, batch_size=1)


def _resume_mid_epoch(tmp_path, quiet: bool) -> list[str]:
    """Fit 1 step, save, resume to step 2 (mid-epoch); the warnings of the resumed fit."""
    import contextlib

    def trainer(steps):
        return L.Trainer(default_root_dir=str(tmp_path), logger=False, max_steps=steps, limit_val_batches=0,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         accelerator="cpu")

    first = trainer(1)
    first.fit(_Tiny(), datamodule=_Four())
    first.save_checkpoint(str(tmp_path / "mid.ckpt"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_lightning() if quiet else contextlib.nullcontext():
            trainer(2).fit(_Tiny(), datamodule=_Four(), ckpt_path=str(tmp_path / "mid.ckpt"), weights_only=False)
    return [str(w.message) for w in caught]


RESUME_NOTICE = "resuming from a checkpoint that ended before the epoch ended"


def test_the_mid_epoch_resume_notice_is_dropped(tmp_path):
    # Our EpochSampler keeps its place in the checkpoint (resumes are bit-exact, tested in
    # tests/commands), so Lightning's "dataloader is not resumable" on every --resume is noise.
    assert any(RESUME_NOTICE in text for text in _resume_mid_epoch(tmp_path / "loud", quiet=False))
    assert not any(RESUME_NOTICE in text for text in _resume_mid_epoch(tmp_path / "quiet", quiet=True))
