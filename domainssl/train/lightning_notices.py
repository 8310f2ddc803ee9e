"""Lightning's notices that say nothing a domainssl user can act on, kept out of a run's output.

Each one below is what our design does on purpose; printed on every run, they hid the lines that
matter (the scan summary, read warnings, collapse warnings). Everything else Lightning says
still comes through.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from typing import Iterator

# (message regex, why it is by design)
BY_DESIGN_WARNINGS = (
    (r"You defined a `validation_step` but have no `val_dataloader`",
     "validation_step is the optional online-kNN monitor; without monitor labels it has no data"),
    (r"You have overridden `on_after_batch_transfer` in `LightningModule`",
     "views are made on the device after transfer, for every data module"),
    (r"The number of training batches \(\d+\) is smaller than the logging interval",
     "short epochs over small archives are normal; logging counts steps, not epochs"),
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated",
     "Lightning calling a torch API torch has since renamed: nothing for a user to change"),
    (r"Experiment logs directory .* exists and is not empty",
     "only a resumed run logs into its folder again (a new run into a used folder is refused), "
     "and the earlier CSV log was kept as metrics.partN.csv"),
    (r"Checkpoint directory .* exists and is not empty",
     "only a resumed run checkpoints into its folder again; its new checkpoints join the earlier"),
    (r"You're resuming from a checkpoint that ended before the epoch ended and your dataloader is"
     r" not resumable",
     "the patch order resumes exactly: the run's sampler (EpochSampler) keeps its position in the "
     "checkpoint, and resumed runs end with an uninterrupted run's weights (tested to the bit)"),
)

# rank-zero info lines (logging, not warnings) that advertise rather than inform
ADVERTISEMENTS = (re.compile(r"Tip: For seamless cloud logging"),)
RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class _DropAdvertisements(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(pattern.search(text) for pattern in ADVERTISEMENTS)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Within the block, Lightning's by-design notices (above) are not shown."""
    drop = _DropAdvertisements()
    loggers = [logging.getLogger(name) for name in RANK_ZERO_LOGGERS]
    with warnings.catch_warnings():
        for pattern, _why in BY_DESIGN_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        for logger in loggers:
            logger.addFilter(drop)
        try:
            yield
        finally:
            for logger in loggers:
                logger.removeFilter(drop)
