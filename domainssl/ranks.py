"""Which process of a multi-device run this is, read from the environment (it is set before
torch.distributed exists, and in DataLoader workers): a run builds its data (scan, statistics)
before the Trainer starts the process group, and view streams are keyed by rank.

Two ways a run gets several processes:
- Lightning's own launcher (`trainer.devices: 4` and `domainssl pretrain` started once): the first
  process builds everything, then starts the others, which re-run the same command with
  LOCAL_RANK=1..N-1. The run directory's scan and statistics are complete by then, so they reuse
  them instead of scanning the archive again (a long scan would also outlast the first process's
  wait for them). On a second node (NODE_RANK > 0) nothing is complete yet: those scan for
  themselves, as below.
- An external launcher (torchrun, SLURM's srun): every process starts at once with RANK or
  SLURM_PROCID set; none can wait for another's files, so each scans into a folder of its own
  (the scan and the statistics are deterministic, so all ranks see the same images).
Only rank 0 writes the run directory's files and prints the run's progress.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path


def process_rank() -> int:
    """This process's global rank as far as the environment says (0 in a single process), read
    in Lightning's order: RANK (torchrun), then LOCAL_RANK (Lightning's launcher; SLURM_PROCID
    can be set in a SLURM shell where Lightning starts the processes), then SLURM_PROCID (srun).
    Processes on other nodes than the first count as non-zero."""
    env = os.environ
    if env.get("RANK", "").isdigit():
        return int(env["RANK"])
    if env.get("LOCAL_RANK", "").isdigit():
        node = int(env.get("NODE_RANK", "0") or 0)
        local = int(env["LOCAL_RANK"])
        return local if node == 0 else node * 1_000_000 + local
    if env.get("SLURM_PROCID", "").isdigit():
        return int(env["SLURM_PROCID"])
    # the first process of another node, started by hand (Lightning sets its LOCAL_RANK later)
    return int(env.get("NODE_RANK", "0") or 0) * 1_000_000


def is_rank_zero() -> bool:
    """True in the process that writes the run directory and prints the run's progress."""
    return process_rank() == 0


def started_by_lightning() -> bool:
    """True in a process Lightning's launcher started after rank 0 had built the run's data: on
    the first node only (other nodes' processes start when their user starts them, maybe before
    rank 0 has finished; they scan for themselves)."""
    env = os.environ
    return (not env.get("RANK") and env.get("LOCAL_RANK", "0") not in ("", "0")
            and int(env.get("NODE_RANK", "0") or 0) == 0)


def rank_work_dir(run_dir: Path) -> Path:
    """Where a non-zero rank keeps what it builds itself (never read by rank 0)."""
    return Path(run_dir) / "ranks" / f"rank{process_rank()}"


@contextlib.contextmanager
def quiet_unless_rank_zero():
    """On ranks other than 0, silence printed output and warnings (rank 0 says the same once);
    errors still reach stderr."""
    if is_rank_zero():
        yield
        return
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
