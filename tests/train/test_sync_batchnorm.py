"""SyncBatchNorm in runs over several GPUs: when the run turns it on, and what the conversion keeps."""

from types import SimpleNamespace

import torch

from domainssl.train.pretraining import wants_sync_batchnorm


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
