"""A ViT for 2D or 3D inputs with fixed sin-cos positions and optional channel-group patches.

Transformer blocks are timm's `Block`. What is ours is the sin-cos table for any grid and the patch
embedding: a strided Conv2d/Conv3d (anisotropic patch sizes such as (4, 16, 16) for thick slices),
or, with `channel_groups`, one embedding per group of channels (bands, stains) plus a learned group
embedding, in the spirit of SatMAE, so MAE can mask groups independently. The positional table is
rebuilt for each grid size, so any input divisible by the patch size works (DINO local crops).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

from .input_shape import batch_axes, batch_dims_problem
from .encoder import TokenEncoder
from .patches import grid_shape

# name -> (embed_dim, depth, num_heads); the standard ViT sizes.
VIT_SIZES = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12),
             "large": (1024, 24, 16)}


def sincos_pos_embed(grid: Sequence[int], embed_dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed sin-cos positions for a patch grid of any dimension: (1, prod(grid), embed_dim).

    Each axis gets embed_dim / (2 * len(grid)) frequencies (sin and cos blocks, axis after axis);
    rows follow `patches.patchify`'s row-major token order. Written here rather than taken from
    MONAI (2D/3D only) so that it serves any number of axes and the training path needs only
    torch and timm.
    """
    d = len(grid)
    if embed_dim % (2 * d):
        raise ValueError(f"embed_dim {embed_dim} must be divisible by {2 * d} for {d}D sin-cos "
                         f"positions")
    n_freq = embed_dim // (2 * d)
    omega = temperature ** (-torch.arange(n_freq, dtype=torch.float64) / n_freq)
    coords = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in grid], indexing="ij")
    parts = []
    for c in coords:
        angle = c.reshape(-1, 1) * omega.reshape(1, -1)
        parts += [torch.sin(angle), torch.cos(angle)]
    return torch.cat(parts, dim=1).unsqueeze(0).float()


class PositionTable(nn.Module):
    """A fixed position table (1, prod(grid), dim) for any patch grid, built by `make(grid, dim)`.

    The training grid's table is a non-persistent buffer (moves with the module, not saved), so a
    compiled graph reads it as a plain tensor; a dict cache would be mutated on first use inside
    the graph and force a recompile. Other grids (other input sizes) are built once and cached.
    """

    def __init__(self, grid: Sequence[int], dim: int, make=sincos_pos_embed) -> None:
        super().__init__()
        self.grid, self.dim, self.make = tuple(int(g) for g in grid), int(dim), make
        self.register_buffer("table", make(self.grid, self.dim), persistent=False)
        self._cache: dict[tuple, torch.Tensor] = {}

    def forward(self, grid: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        """The table for `grid` in `dtype`, on the module's device."""
        if tuple(grid) == self.grid:
            return self.table.to(dtype)
        key = (tuple(grid), str(self.table.device), dtype)
        if key not in self._cache:
            self._cache[key] = self.make(tuple(grid), self.dim).to(self.table.device, dtype)
        return self._cache[key]


def _norm_groups(channel_groups, in_chans: int) -> list[list[int]] | None:
    if channel_groups is None:
        return None
    groups = [[int(c) for c in g] for g in channel_groups]
    flat = sorted(c for g in groups for c in g)
    if flat != list(range(in_chans)):
        raise ValueError(f"channel_groups {groups} must use every channel 0..{in_chans - 1} exactly "
                         f"once")
    return groups


class ViTEncoder(TokenEncoder):
    """ViT over (B, C, *S) with S 2D or 3D.

    Args:
      arch: 'vit2d_<size>' or 'vit3d_<size>' with size in tiny|small|base|large.
      patch_size: int or one int per spatial axis (e.g. (4, 16, 16) for (Z, Y, X)).
      embed_dim, depth, num_heads: override the named size (tiny test models).
      channel_groups: optional list of channel-index lists; each group gets its own patch
        embedding, so there are G * prod(grid) tokens, ordered group-major.
      global_pool: 'token' (class token) or 'avg' (mean of patch tokens).
    """

    def __init__(self, arch: str, in_chans: int, spatial_dims: int, input_size: Sequence[int],
                 channel_names: Sequence[str] | None = None, patch_size: int | Sequence[int] = 16,
                 embed_dim: int | None = None, depth: int | None = None,
                 num_heads: int | None = None, mlp_ratio: float = 4.0,
                 channel_groups: Sequence[Sequence[int]] | None = None,
                 global_pool: str = "token", drop_path_rate: float = 0.0) -> None:
        size = arch.split("_", 1)[1] if "_" in arch else ""
        if size not in VIT_SIZES:
            raise ValueError(f"unknown ViT size in {arch!r}; use one of "
                             f"{[f'vit{spatial_dims}d_{s}' for s in VIT_SIZES]}")
        d0, depth0, heads0 = VIT_SIZES[size]
        embed_dim, depth, num_heads = embed_dim or d0, depth or depth0, num_heads or heads0
        patch = (patch_size,) * spatial_dims if isinstance(patch_size, int) else tuple(patch_size)
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
        super().__init__(arch, in_chans, spatial_dims, input_size, channel_names,
                         patch_size=patch, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                         mlp_ratio=mlp_ratio, channel_groups=channel_groups,
                         global_pool=global_pool, drop_path_rate=drop_path_rate)
        if len(patch) != spatial_dims:
            raise ValueError(f"patch_size {patch} needs {spatial_dims} entries")
        if embed_dim % (2 * spatial_dims):
            raise ValueError(f"embed_dim {embed_dim} must be divisible by {2 * spatial_dims} for "
                             f"{spatial_dims}D sin-cos positions")
        self.grid_size = grid_shape(self.input_size, patch)
        self.patch_size = patch
        self.embed_dim = embed_dim
        self.global_pool = global_pool
        self.channel_groups = _norm_groups(channel_groups, in_chans)
        self.num_prefix_tokens = 1

        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        if self.channel_groups is None:
            self.patch_embed = conv(in_chans, embed_dim, kernel_size=patch, stride=patch)
            self.group_embed = None
        else:
            self.patch_embed = nn.ModuleList(conv(len(g), embed_dim, kernel_size=patch, stride=patch)
                                             for g in self.channel_groups)
            self.group_embed = nn.Parameter(torch.zeros(1, len(self.channel_groups), 1, embed_dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))

        from timm.models.vision_transformer import Block

        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True,
                                            drop_path=dpr[i]) for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.pos_table = PositionTable(self.grid_size, embed_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        # MAE-style init: xavier for linear layers and patch projections, small normal for tokens.
        nn.init.normal_(self.cls_token, std=0.02)
        if self.group_embed is not None:
            nn.init.normal_(self.group_embed, std=0.02)
        convs = self.patch_embed if isinstance(self.patch_embed, nn.ModuleList) else [self.patch_embed]
        for c in convs:
            nn.init.xavier_uniform_(c.weight.view(c.weight.shape[0], -1))
            nn.init.zeros_(c.bias)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def num_groups(self) -> int:
        """Number of channel groups (1 without channel grouping)."""
        return 1 if self.channel_groups is None else len(self.channel_groups)

    @property
    def token_blocks(self) -> nn.Module:
        return self.blocks

    def embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *S) -> (B, G * N, D) tokens with positions (and group embedding) added."""
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_chans:
            raise ValueError(self.input_problem(x.shape))  # only ints on the happy path (compile)
        grid = grid_shape(x.shape[2:], self.patch_size)
        if self.channel_groups is None:
            t = self.patch_embed(x).flatten(2).transpose(1, 2)
            return t + self.pos_table(grid, t.dtype)
        # One token set per channel group: (B, G, N, D), then group-major flattening.
        t = torch.stack([emb(x[:, g]).flatten(2).transpose(1, 2)
                         for emb, g in zip(self.patch_embed, self.channel_groups)], dim=1)
        t = t + self.pos_table(grid, t.dtype).unsqueeze(1) + self.group_embed.to(t.dtype)
        return t.flatten(1, 2)

    def input_problem(self, shape: Sequence[int]) -> str | None:
        """What is wrong with an input of `shape` for this encoder (dims, batch axis, channels), or
        None. Checked before the patch embedding, whose own error would name neither."""
        wrong_dims = batch_dims_problem(shape, self.spatial_dims, self.in_chans)
        if wrong_dims:
            return f"{self.arch} encoder {wrong_dims}"
        if int(shape[1]) != self.in_chans:
            return (f"{self.arch} encoder expects {self.in_chans} channels on axis 1 of "
                    f"{batch_axes(self.spatial_dims)}, got {int(shape[1])} in an input of shape "
                    f"{tuple(int(s) for s in shape)}")
        return None

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, K, D) -> (B, 1 + K, D): class token prepended, transformer blocks, final norm."""
        cls = self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        return self.norm(self.blocks(torch.cat([cls, tokens], dim=1)))

    def pool_tokens(self, out: torch.Tensor) -> torch.Tensor:
        """(B, 1 + K, D) -> (B, D): class token, or the mean of patch tokens."""
        return out[:, 0] if self.global_pool == "token" else out[:, 1:].mean(dim=1)

    def num_tokens(self, spatial: Sequence[int] | None = None) -> int:
        """Patch tokens for an input of `spatial` size (default: input_size), groups included."""
        grid = grid_shape(spatial or self.input_size, self.patch_size)
        return self.num_groups * math.prod(grid)


def build_vit(arch: str, in_chans: int, spatial_dims: int, input_size: Sequence[int],
              **kwargs: Any) -> ViTEncoder:
    """Build `vit2d_*` / `vit3d_*`; the dimension in the name must match spatial_dims."""
    want = f"vit{spatial_dims}d_"
    if not arch.startswith(want):
        raise ValueError(f"arch {arch!r} does not match spatial_dims={spatial_dims} (use {want}...)")
    return ViTEncoder(arch, in_chans, spatial_dims, input_size, **kwargs)
