"""Multi-process (DDP) correctness on CPU: 2 gloo processes against one process over the whole
batch. The losses gather negatives across ranks and the DINO centre / MoCo queue are shared, so
what two ranks compute must be what one process computes on the concatenated batch, and the
gradients each rank receives must be those of the global loss (DDP then averages them)."""

import pytest
import torch

from ddp_cases import loss_cases_body, run_ranks
from domainssl.methods.losses import DINOLoss, info_nce_loss, nt_xent_loss

WORLD = 2


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(0)
    return {
        "nt_xent": {"z1": torch.randn(8, 5, generator=g), "z2": torch.randn(8, 5, generator=g),
                    "temperature": 0.3},
        "info_nce": {"q": torch.randn(8, 5, generator=g), "k": torch.randn(8, 5, generator=g),
                     "temperature": 0.2},
        "dino_center": {"teacher": torch.randn(12, 7, generator=g), "momentum": 0.9},
        "moco_queue": {"keys": torch.randn(6, 4, generator=g), "queue_size": 10},
    }


@pytest.fixture(scope="module")
def ranks(inputs, tmp_path_factory):
    return run_ranks(loss_cases_body, tmp_path_factory.mktemp("ddp"), WORLD, cases=inputs)


def _leaf(x):
    return x.clone().requires_grad_(True)


def test_nt_xent_gathers_negatives_across_ranks(inputs, ranks):
    kw = inputs["nt_xent"]
    z1, z2 = _leaf(kw["z1"]), _leaf(kw["z2"])
    full = nt_xent_loss(z1, z2, kw["temperature"])
    full.backward()
    per_rank = [r["nt_xent"] for r in ranks]
    # each rank averages over its own rows; equal shards -> the global loss is their mean
    assert torch.stack([r["loss"] for r in per_rank]).mean().item() == pytest.approx(full.item(), rel=1e-6)
    # a local-only loss (negatives from this rank alone) would differ
    local = nt_xent_loss(kw["z1"][:4], kw["z2"][:4], kw["temperature"], gather_distributed=False)
    assert abs(local.item() - per_rank[0]["loss"].item()) > 1e-3
    # rank r's inputs receive the gradient of the sum of all ranks' losses = W * d(mean)/dz
    grad1 = torch.cat([r["grad1"] for r in per_rank])
    grad2 = torch.cat([r["grad2"] for r in per_rank])
    torch.testing.assert_close(grad1, WORLD * z1.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad2, WORLD * z2.grad, rtol=1e-5, atol=1e-7)


def test_info_nce_gathers_keys_across_ranks(inputs, ranks):
    kw = inputs["info_nce"]
    q, k = _leaf(kw["q"]), _leaf(kw["k"])
    full = info_nce_loss(q, k, kw["temperature"])
    full.backward()
    per_rank = [r["info_nce"] for r in ranks]
    assert torch.stack([r["loss"] for r in per_rank]).mean().item() == pytest.approx(full.item(), rel=1e-6)
    torch.testing.assert_close(torch.cat([r["grad_q"] for r in per_rank]), WORLD * q.grad,
                               rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(torch.cat([r["grad_k"] for r in per_rank]), WORLD * k.grad,
                               rtol=1e-5, atol=1e-7)


def test_dino_center_is_the_mean_over_all_ranks(inputs, ranks):
    kw = inputs["dino_center"]
    crit = DINOLoss(kw["teacher"].shape[-1], center_momentum=kw["momentum"])
    crit.update_center(kw["teacher"])
    expected = (1 - kw["momentum"]) * kw["teacher"].mean(dim=0, keepdim=True)
    torch.testing.assert_close(crit.center, expected)
    for r in ranks:
        torch.testing.assert_close(r["dino_center"]["center"], expected)


def test_moco_queue_holds_keys_of_every_rank_in_rank_order(inputs, ranks):
    kw = inputs["moco_queue"]
    keys = torch.nn.functional.normalize(kw["keys"], dim=1)
    for r in ranks:
        queue = r["moco_queue"]["queue"]
        torch.testing.assert_close(queue[:6], keys)   # the same queue on both ranks
        assert r["moco_queue"]["ptr"] == 6
    torch.testing.assert_close(ranks[0]["moco_queue"]["queue"], ranks[1]["moco_queue"]["queue"])


# Lightning DDP (2 CPU processes): a NaN batch on one rank must make every rank skip the step
# (DDP averages gradients, so that rank's NaN reaches every update), with the device-side guard
# (fused AdamW) and the synchronising one (Lightning refuses a skipped training_step under DDP);
# momentum nets, MoCo's queue and DINO's centre must stay finite and equal on every rank.
DDP_RUNS = [
    {"method": "byol", "nan_at": 1, "knn_items": 11,
     "kw": {"proj_hidden_dim": 16, "pred_hidden_dim": 16, "proj_dim": 8}},
    {"method": "simclr", "nan_at": 1, "fused": False, "kw": {"proj_hidden_dim": 16, "proj_dim": 8}},
    {"method": "mocov3", "nan_at": 1, "kw": {"queue_size": 16, "proj_hidden_dim": 16,
                                             "pred_hidden_dim": 16, "proj_dim": 8}},
    {"method": "dino", "nan_at": 1, "nan_rank": 0, "fused": False,
     "kw": {"out_dim": 16, "hidden_dim": 8, "bottleneck_dim": 8}},
]


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    from ddp_cases import lightning_ddp_body

    per_rank = run_ranks(lightning_ddp_body, tmp_path_factory.mktemp("lightning_ddp"), WORLD,
                         runs=DDP_RUNS)
    return [[per_rank[r][i] for r in range(WORLD)] for i in range(len(DDP_RUNS))]


@pytest.mark.parametrize("i", range(len(DDP_RUNS)), ids=[r["method"] for r in DDP_RUNS])
def test_ddp_nan_step_is_skipped_on_every_rank(ddp_runs, i):
    ranks = ddp_runs[i]
    for r in ranks:
        assert r["facts"]["skipped_steps"] == 1
        assert all(torch.isfinite(v.float()).all() for v in r["state"].values())
    # said once, by rank 0; BYOL's loss is per rank, so rank 0 learns of rank 1's NaN from the
    # flag (SimCLR's gathered loss is NaN on every rank)
    assert len(ranks[0]["nan_warnings"]) == 1 and ranks[1]["nan_warnings"] == []
    if DDP_RUNS[i]["method"] == "byol":
        assert "on another rank" in ranks[0]["nan_warnings"][0]
    a, b = ranks[0]["state"], ranks[1]["state"]
    # BatchNorm running statistics are per rank (no SyncBatchNorm on CPU); all else is shared
    differ = [k for k in a if not k.endswith(("running_mean", "running_var"))
              and not torch.equal(a[k], b[k])]
    assert differ == []


def test_ddp_read_skips_are_summed_over_ranks(ddp_runs):
    # rank 0's loader reported 1 skip per batch, rank 1's 2: 3 batches -> 3 + 6 on both ranks
    for r in ddp_runs[0]:
        skips = r["facts"]["read_skips"]
        assert skips["count"] == 9
        assert skips["examples"] == ["rank0.tif: unreadable", "rank1.tif: unreadable"]


def test_ddp_knn_monitor_scores_each_labeled_image_once(ddp_runs):
    # 11 labeled images over 2 ranks: each rank scores its share (one padded duplicate), and the
    # gathered reference set must hold every image once, as in one process; unsharded, each
    # image would find its own copy from the other rank and score ~100 %.
    for r in ddp_runs[0]:
        assert r["facts"]["knn_acc"] == pytest.approx(r["knn_one_process"])
        assert r["knn_one_process"] < 0.9


def test_ddp_ranks_draw_different_random_numbers(ddp_runs):
    # seeded alike, then one stream per rank: MAE's masks differ between GPUs
    for runs in ddp_runs:
        assert not torch.equal(runs[0]["random_draw"], runs[1]["random_draw"])
