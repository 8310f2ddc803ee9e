"""Which process of a multi-device run this is, from the environment."""

import pytest

from domainssl.ranks import is_rank_zero, process_rank, rank_work_dir, started_by_lightning

KEYS = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK")


@pytest.mark.parametrize("env,rank,by_lightning", [
    ({}, 0, False),                                          # a single process
    ({"LOCAL_RANK": "0"}, 0, False),                         # Lightning's launching process
    ({"LOCAL_RANK": "3"}, 3, True),                          # a process Lightning started
    ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, 1_000_000, False),  # node 2, started by its user
    ({"NODE_RANK": "1"}, 1_000_000, False),                  # ... before Lightning sets LOCAL_RANK
    ({"LOCAL_RANK": "1", "NODE_RANK": "1"}, 1_000_001, False),  # node 2: rank 0 may not be done
    ({"RANK": "2", "LOCAL_RANK": "2"}, 2, False),            # torchrun
    ({"RANK": "0", "LOCAL_RANK": "0"}, 0, False),
    ({"SLURM_PROCID": "5"}, 5, False),                       # srun
    ({"SLURM_PROCID": "0", "LOCAL_RANK": "1"}, 1, True),     # Lightning's launcher in a SLURM shell
])
def test_rank_from_the_environment(monkeypatch, tmp_path, env, rank, by_lightning):
    for key in KEYS:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert process_rank() == rank
    assert is_rank_zero() == (rank == 0)
    assert started_by_lightning() == by_lightning
    assert rank_work_dir(tmp_path) == tmp_path / "ranks" / f"rank{rank}"
