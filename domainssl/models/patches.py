"""Patchify / unpatchify and random token masking for any number of spatial dims and channels.

Written once for 2D images (B, C, Y, X) and 3D volumes (B, C, Z, Y, X) alike. Token order is
row-major over the patch grid, the same order a strided convolution patch embedding produces after
`flatten(2)`, so token i of `patchify(x)` and token i of the encoder describe the same region.
Within a token, features are laid out as (p_0, p_1, ..., C): spatial offsets first, channel last.

Hand-written because timm and MONAI only provide 2D (timm) or fixed-layout (MONAI) variants; a
single N-d version keeps MAE's 2D and 3D paths identical.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch


def grid_shape(spatial: Sequence[int], patch_size: Sequence[int]) -> tuple[int, ...]:
    """Patch grid (n_0, n_1, ...) for an input of `spatial` size; each axis must divide evenly."""
    if len(spatial) != len(patch_size):
        raise ValueError(f"input has {len(spatial)} spatial dims {tuple(spatial)} but the patch size "
                         f"{tuple(patch_size)} has {len(patch_size)}")
    for s, p in zip(spatial, patch_size):
        if s % p:
            raise ValueError(f"input size {tuple(spatial)} is not divisible by patch size "
                             f"{tuple(patch_size)}; crop or pad the input to a multiple of the patch")
    return tuple(s // p for s, p in zip(spatial, patch_size))


def patchify(x: torch.Tensor, patch_size: Sequence[int]) -> torch.Tensor:
    """Cut images into non-overlapping patches.

    x: (B, C, *S) with len(S) == len(patch_size). Returns (B, N, prod(patch_size) * C) where
    N = prod(S_i / p_i), tokens in row-major grid order, features ordered (p_0, ..., p_{d-1}, C).
    """
    b, c, *spatial = x.shape
    d = len(spatial)
    grid = grid_shape(spatial, patch_size)
    # (B, C, n0, p0, n1, p1, ...) -> (B, n0, n1, ..., p0, p1, ..., C)
    shape = [b, c]
    for n, p in zip(grid, patch_size):
        shape += [n, p]
    x = x.reshape(shape)
    perm = [0] + [2 + 2 * i for i in range(d)] + [3 + 2 * i for i in range(d)] + [1]
    x = x.permute(perm)
    return x.reshape(b, math.prod(grid), math.prod(patch_size) * c)


def unpatchify(tokens: torch.Tensor, patch_size: Sequence[int], grid: Sequence[int],
               in_chans: int) -> torch.Tensor:
    """Inverse of `patchify`: (B, N, prod(p) * C) -> (B, C, *[n_i * p_i]). Exact round trip."""
    b, n, f = tokens.shape
    d = len(patch_size)
    if n != math.prod(grid) or f != math.prod(patch_size) * in_chans:
        raise ValueError(f"tokens of shape {tuple(tokens.shape)} do not match grid {tuple(grid)}, "
                         f"patch {tuple(patch_size)} and {in_chans} channels")
    x = tokens.reshape([b, *grid, *patch_size, in_chans])
    # (B, n0.., p0.., C) -> (B, C, n0, p0, n1, p1, ...)
    perm = [0, 1 + 2 * d]
    for i in range(d):
        perm += [1 + i, 1 + d + i]
    x = x.permute(perm)
    return x.reshape([b, in_chans, *[g * p for g, p in zip(grid, patch_size)]])


def num_kept(num_tokens: int, mask_ratio: float) -> int:
    """Tokens left visible when masking `mask_ratio` of `num_tokens` (at least one is kept)."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    return max(1, int(round(num_tokens * (1.0 - mask_ratio))))


def random_masking(batch: int, num_tokens: int, mask_ratio: float, device=None,
                   generator: torch.Generator | None = None):
    """Pick a random subset of tokens to keep per sample.

    Returns (keep_idx, mask, restore_idx):
      keep_idx    (B, K) long: indices of visible tokens, K = num_kept(N, mask_ratio)
      mask        (B, N) float: 1 for masked tokens, 0 for visible ones, in original token order
      restore_idx (B, N) long: gathering [visible, masked] tokens with it restores original order
    """
    k = num_kept(num_tokens, mask_ratio)
    noise = torch.rand(batch, num_tokens, device=device, generator=generator)
    shuffle = noise.argsort(dim=1)
    restore = shuffle.argsort(dim=1)
    keep = shuffle[:, :k]
    mask = torch.ones(batch, num_tokens, device=device)
    mask[:, :k] = 0.0
    mask = torch.gather(mask, 1, restore)
    return keep, mask, restore


def masked_indices(restore: torch.Tensor, num_visible: int) -> torch.Tensor:
    """Indices of the masked tokens, (B, N - K) long, from `random_masking`'s restore (B, N) and
    K = num_visible. The inverse of the restore permutation is the shuffle whose first K
    entries were kept; no host sync (the count is known), unlike `mask.nonzero()`."""
    return restore.argsort(dim=1)[:, num_visible:]


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Select tokens per sample: x (B, N, D), idx (B, K) -> (B, K, D)."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
