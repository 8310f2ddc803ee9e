"""Which process of a multi-device run this is (from the environment), and the SyncBatchNorm default."""

from types import SimpleNamespace

import pytest
import torch

from domainssl.train.pretraining import wants_sync_batchnorm
from domainssl.train.ranks import is_rank_zero, process_rank, rank_work_dir, started_by_lightning

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


def _trainer(world, device):
    return SimpleNamespace(world_size=world, strategy=SimpleNamespace(root_device=torch.device(device)))


def test_sync_batchnorm_only_for_batchnorm_models_on_several_gpus():
    with_bn = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    without = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2))
    assert wants_sync_batchnorm(_trainer(2, "cuda"), with_bn)
    assert not wants_sync_batchnorm(_trainer(1, "cuda"), with_bn)
    assert not wants_sync_batchnorm(_trainer(2, "cpu"), with_bn)   # no CPU SyncBatchNorm kernel
    assert not wants_sync_batchnorm(_trainer(8, "cuda"), without)


def test_sync_batchnorm_conversion_keeps_the_checkpoint_keys():
    # the run converts in place (as Lightning's sync_batchnorm=True would): exported weights
    # must still load into the plain BatchNorm encoder
    from domainssl.methods import build_method
    from domainssl.models import build_encoder

    method = build_method("byol", build_encoder("resnet18", 2, 2, (32, 32)), proj_hidden_dim=16,
                          pred_hidden_dim=16, proj_dim=8)
    keys = list(method.state_dict())
    assert torch.nn.SyncBatchNorm.convert_sync_batchnorm(method) is method
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in method.encoder.modules())
    assert list(method.state_dict()) == keys
