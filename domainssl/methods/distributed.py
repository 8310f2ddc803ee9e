"""Small helpers for multi-process (DDP) training; no-ops in a single process."""

from __future__ import annotations

import torch


def world_size() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` (B, ...) from every rank -> (W * B, ...), rank order; gradients flow back.

    Uses torch.distributed.nn.functional.all_gather, whose backward returns each rank its slice.
    """
    if world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` (B, ...) from every rank without gradient (queues, centres)."""
    if world_size() == 1:
        return x
    import torch.distributed as dist

    out = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)


@torch.no_grad()
def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of `x` over ranks (in place when distributed), returned for chaining."""
    if world_size() > 1:
        import torch.distributed as dist

        dist.all_reduce(x)
    return x


@torch.no_grad()
def all_reduce_max(x: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum of `x` over ranks (in place when distributed), returned for chaining.
    A device tensor stays on the device: no host synchronisation."""
    if world_size() > 1:
        import torch.distributed as dist

        dist.all_reduce(x, op=dist.ReduceOp.MAX)
    return x


def all_gather_objects(obj):
    """[obj of rank 0, obj of rank 1, ...] (picklable objects; [obj] in a single process)."""
    if world_size() == 1:
        return [obj]
    import torch.distributed as dist

    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out
