"""The `Encoder` interface every backbone in domainssl presents to methods and transfer.

An encoder maps channel-first images (B, C, *S) to pooled features (B, embed_dim). ViT encoders
also give patch tokens (B, N, embed_dim) and expose the token-level pieces MAE needs
(`embed_patches`, `encode_tokens`, `pool_tokens`). CNN encoders set `forward_tokens = None`.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..jsonable import jsonable


class Encoder(nn.Module):
    """Base class: common attributes and the rebuildable `config`.

    Attributes:
      arch (str), in_chans (int), spatial_dims (int), embed_dim (int),
      patch_size (tuple[int, ...] | None: None for CNNs), channel_names (list[str] | None),
      config (dict: `build_encoder(**config)` rebuilds the same architecture).
    """

    # None for encoders without patch tokens (CNNs); token encoders define the method, so callers
    # can test `enc.forward_tokens is None`.
    forward_tokens = None
    num_prefix_tokens: int = 0

    def __init__(self, arch: str, in_chans: int, spatial_dims: int, input_size: Sequence[int],
                 channel_names: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__()
        if in_chans < 1:
            raise ValueError(f"in_chans must be >= 1, got {in_chans}")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        input_size = tuple(int(s) for s in input_size)
        if len(input_size) != spatial_dims:
            raise ValueError(f"input_size {input_size} must have {spatial_dims} entries "
                             f"(one per spatial axis, channel axis excluded)")
        if channel_names is not None and len(channel_names) != in_chans:
            raise ValueError(f"{len(channel_names)} channel names {list(channel_names)} given for "
                             f"{in_chans} input channels")
        self.arch = arch
        self.in_chans = int(in_chans)
        self.spatial_dims = int(spatial_dims)
        self.input_size = input_size
        self.channel_names = list(channel_names) if channel_names is not None else None
        self.patch_size: tuple[int, ...] | None = None
        self.embed_dim: int = 0
        self.config = jsonable(dict(arch=arch, in_chans=self.in_chans, spatial_dims=self.spatial_dims,
                                     input_size=input_size, channel_names=self.channel_names, **kwargs))

    @property
    def is_vit(self) -> bool:
        """True when the encoder gives patch tokens (and supports MAE's token path)."""
        return self.forward_tokens is not None

    def extra_repr(self) -> str:
        return (f"arch={self.arch!r}, in_chans={self.in_chans}, spatial_dims={self.spatial_dims}, "
                f"embed_dim={self.embed_dim}, patch_size={self.patch_size}")


class TokenEncoder(Encoder):
    """A ViT-style encoder, split into the steps MAE and DINO need.

    Subclasses implement:
      embed_patches(x)      (B, C, *S) -> (B, N, D) patch tokens with positional embedding added
      encode_tokens(tokens) (B, K, D)  -> (B, P + K, D) prefix tokens prepended, blocks, final norm
      pool_tokens(out)      (B, P + K, D) -> (B, D)
    """

    def embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pool_tokens(self, out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def token_blocks(self) -> nn.Module:
        """The transformer block stack that `encode_tokens` runs: the module to compile when a
        method calls the token steps directly (MAE) instead of `forward`."""
        raise NotImplementedError

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens after the final norm: (B, C, *S) -> (B, N, embed_dim)."""
        return self.encode_tokens(self.embed_patches(x))[:, self.num_prefix_tokens:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features: (B, C, *S) -> (B, embed_dim)."""
        return self.pool_tokens(self.encode_tokens(self.embed_patches(x)))
