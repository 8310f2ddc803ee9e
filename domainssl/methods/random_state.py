"""The random number generators' state, saved in checkpoints so a resumed run draws what an
uninterrupted run would have drawn (MAE's masks, drop-path): resuming is then exact."""

from __future__ import annotations

import torch


def capture_rng(device: torch.device) -> dict:
    """{"cpu": CPU generator state, "cuda": this process's GPU generator state or None}, as
    uint8 tensors (they load with torch.load(weights_only=True))."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def restore_rng(state: dict, device: torch.device) -> None:
    """Set the generators to a `capture_rng` state (the GPU one only on a GPU)."""
    torch.set_rng_state(state["cpu"])
    if state.get("cuda") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
