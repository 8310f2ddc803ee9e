"""Per-rank bodies of the multi-process tests: run under torch.multiprocessing with the gloo
backend on CPU (2 processes), each rank saving what it computed to OUT/rank{r}.pt for the test to
compare with a single process over the whole batch.

Kept in a module of its own because spawned processes import the function by module name.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(body, out_dir: Path, world: int = 2, **kwargs) -> list[dict]:
    """Run `body(rank, world, **kwargs) -> dict` in `world` gloo processes; returns their dicts."""
    import torch.multiprocessing as mp

    port = free_port()
    mp.spawn(_entry, args=(world, port, body, str(out_dir), kwargs), nprocs=world, join=True)
    return [torch.load(Path(out_dir) / f"rank{r}.pt", weights_only=False) for r in range(world)]


def _entry(rank: int, world: int, port: int, body, out_dir: str, kwargs: dict) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = body(rank, world, **kwargs)
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def shard(x: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's contiguous slice of a global batch (rank order = gather order)."""
    b = x.shape[0] // world
    return x[rank * b:(rank + 1) * b]


def tiny_vit():
    from domainssl.models import build_encoder

    return build_encoder("vit2d_tiny", 1, 2, (16, 16), patch_size=8, embed_dim=24, depth=1,
                         num_heads=2)


def nt_xent_body(rank, world, z1, z2, temperature):
    from domainssl.methods.losses import nt_xent_loss

    a = shard(z1, rank, world).clone().requires_grad_(True)
    b = shard(z2, rank, world).clone().requires_grad_(True)
    loss = nt_xent_loss(a, b, temperature)
    loss.backward()
    return {"loss": loss.detach(), "grad1": a.grad, "grad2": b.grad}


def info_nce_body(rank, world, q, k, temperature):
    from domainssl.methods.losses import info_nce_loss

    qq = shard(q, rank, world).clone().requires_grad_(True)
    kk = shard(k, rank, world).clone().requires_grad_(True)
    loss = info_nce_loss(qq, kk, temperature)
    loss.backward()
    return {"loss": loss.detach(), "grad_q": qq.grad, "grad_k": kk.grad}


def dino_center_body(rank, world, teacher, momentum):
    from domainssl.methods.losses import DINOLoss

    crit = DINOLoss(teacher.shape[-1], center_momentum=momentum)
    crit.update_center(shard(teacher, rank, world))
    return {"center": crit.center.clone()}


def moco_queue_body(rank, world, keys, queue_size):
    from domainssl.methods.moco import MoCoV3

    torch.manual_seed(0)
    method = MoCoV3(tiny_vit(), proj_hidden_dim=16, proj_dim=keys.shape[1], pred_hidden_dim=16,
                    queue_size=queue_size, max_steps=10)
    method._enqueue(shard(keys, rank, world))
    return {"queue": method.queue.clone(), "ptr": int(method.queue_ptr)}


def loss_cases_body(rank, world, cases):
    """Every loss-level case in one process group (process start-up dominates their cost)."""
    bodies = {"nt_xent": nt_xent_body, "info_nce": info_nce_body, "dino_center": dino_center_body,
              "moco_queue": moco_queue_body}
    return {name: bodies[name](rank, world, **kw) for name, kw in cases.items()}


class _RankBatches(torch.utils.data.Dataset):
    """Ready-made batches {"views": [v1, v2]}; batch `nan_at` is all NaN on rank `nan_rank`."""

    def __init__(self, rank, steps, batch, nan_at, nan_rank, n_views):
        g = torch.Generator().manual_seed(100 + rank)
        self.items = []
        for step in range(steps):
            views = [torch.randn(batch, 1, 16, 16, generator=g) for _ in range(n_views)]
            if step == nan_at and rank == nan_rank:
                views = [torch.full_like(v, float("nan")) for v in views]
            self.items.append({"views": views, "read_skips": [f"rank{rank}.tif: unreadable"] * (rank + 1)})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class _Labeled(torch.utils.data.Dataset):
    def __init__(self, n):
        g = torch.Generator().manual_seed(7)
        self.tensors = (torch.randn(n, 1, 16, 16, generator=g), torch.arange(n) % 3)

    def __len__(self):
        return len(self.tensors[1])

    def __getitem__(self, i):
        return {"image": self.tensors[0][i], "label": self.tensors[1][i], "index": torch.tensor(i)}


def _knn_loader(n):
    from domainssl.train.pretraining import _stack_items, sharded_over_ranks

    return sharded_over_ranks(torch.utils.data.DataLoader(_Labeled(n), batch_size=4,
                                                          collate_fn=_stack_items))


def lightning_ddp_body(rank, world, runs):
    """Train each run {"method": name, "steps", "nan_at", "nan_rank", "fused", "kw"} for a few
    steps under Lightning's DDP strategy in this process group (Lightning finds the ranks in the
    environment, as under torchrun); returns per run the state dict and the monitors' facts."""
    import logging

    import lightning as L

    from domainssl.methods import base, build_method

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), NODE_RANK="0")
    fused_available = base.fused_adamw_available
    results = []
    for run in runs:
        steps = run.get("steps", 3)
        base.fused_adamw_available = fused_available if run.get("fused", True) else (lambda device: False)
        torch.manual_seed(0)
        method = build_method(run["method"], tiny_vit(), max_steps=steps, lr=1e-3, **run.get("kw", {}))
        batches = _RankBatches(rank, steps, 4, run.get("nan_at", -1), run.get("nan_rank", 1), 2)
        val, val_kw = None, {"limit_val_batches": 0}
        if run.get("knn_items"):  # the kNN monitor's labeled images, as a pretraining run shards them
            val = _knn_loader(run["knn_items"])
            val_kw = {"val_check_interval": steps, "check_val_every_n_epoch": None,
                      "num_sanity_val_steps": 0}
        trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=world, strategy="ddp",
                            logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, use_distributed_sampler=False, **val_kw)
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.fit(method, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None),
                        val_dataloaders=val)
        result = {"state": {k: v.detach().clone() for k, v in method.state_dict().items()},
                  "facts": method.card_facts(), "random_draw": torch.rand(4),
                  "nan_warnings": [str(w.message) for w in caught if "non-finite" in str(w.message)]}
        if val is not None:  # what one process scores over the whole labeled set
            from domainssl.methods.monitors import knn_accuracy

            method.eval()
            images, labels = val.dataset.tensors
            with torch.no_grad():
                result["knn_one_process"] = knn_accuracy(method.encoder(images), labels,
                                                         k=method.hparams.knn_k)
        results.append(result)
    return results
