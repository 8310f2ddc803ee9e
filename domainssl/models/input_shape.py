"""What is wrong with the shape of an encoder's input batch, in words a user can act on
(shared by the ViT's own check and the check of loaded encoders; no torch needed)."""

from __future__ import annotations

from typing import Sequence


def batch_axes(spatial_dims: int) -> str:
    """"(B, C, Y, X)" or "(B, C, Z, Y, X)"."""
    return "(B, C, Z, Y, X)" if spatial_dims == 3 else "(B, C, Y, X)"


def batch_dims_problem(shape: Sequence[int], spatial_dims: int, in_chans: int) -> str | None:
    """None when `shape` has the batch's number of dims (B, C, *S); else what is wrong, starting
    "is ND and expects a batch ...": a missing batch axis, a 2D batch given to a 3D encoder or
    the reverse, a missing channel axis."""
    shape = tuple(int(s) for s in shape)
    d, c = int(spatial_dims), int(in_chans)
    if len(shape) == d + 2:
        return None
    head = f"is {d}D and expects a batch {batch_axes(d)} ({d + 2} dims), got {len(shape)} dims {shape}"
    if len(shape) == d + 1 and shape[0] == c and not (d == 3 and shape[1] == c):
        return f"{head}: the input lacks the batch axis; add it, e.g. x[None] or x.unsqueeze(0)"
    if d == 3 and len(shape) == 4:
        one = " (or, for a single volume (C, Z, Y, X), add the batch axis: x[None])" if shape[0] == c else ""
        return (f"{head}: this looks like a 2D batch (B, C, Y, X); give volumes (B, C, Z, Y, X), or use "
                f"a 2D encoder for 2D images{one}")
    if d == 2 and len(shape) == 5:
        return (f"{head}: this looks like a 3D batch (B, C, Z, Y, X); give 2D images, e.g. one z plane "
                "x[:, :, z], or use a 3D encoder (vit3d_*) for volumes")
    if len(shape) == d + 1 and c == 1:
        return f"{head}: for a batch of single-channel images add the channel axis, e.g. x[:, None]"
    return head
