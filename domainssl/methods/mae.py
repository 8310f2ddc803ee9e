"""MAE (He et al. 2022) for 2D images and 3D volumes, with optional channel-group masking.

Follows the paper's steps: `patchify` (models.patches), `forward_encoder` (random masking, encode
the visible tokens), `forward_decoder` (mask tokens back in place, light transformer decoder),
`forward_loss` (MSE on masked patches only, optionally on per-patch normalised pixels).
With an encoder built with `channel_groups` (e.g. vit2d_small with bands grouped by resolution,
or stains grouped), every (group, position) token is masked independently, as in SatMAE.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..models.patches import gather_tokens, grid_shape, masked_indices, patchify, random_masking
from ..models.vit_nd import PositionTable, sincos_pos_embed
from .base import SSLMethod


def decoder_pos_embed(grid, dim: int) -> torch.Tensor:
    """Sin-cos table (1, prod(grid), dim) for any dim: the sin-cos part needs a multiple of
    2 * len(grid), so the remaining few channels are zero (e.g. 512 = 510 + 2 for 3D)."""
    usable = dim - dim % (2 * len(grid))
    table = sincos_pos_embed(grid, usable)
    return torch.nn.functional.pad(table, (0, dim - usable))


class MAE(SSLMethod):
    """Masked autoencoder. The encoder must be a token encoder (timm ViT, vit2d_*, vit3d_*).

    views: one tensor (B, C, *S) (only the first view is used).
    Hyper-parameters: mask_ratio, norm_pix_loss, decoder_dim, decoder_depth, decoder_heads.
    """

    method_name = "mae"

    def __init__(self, encoder, mask_ratio: float = 0.75, norm_pix_loss: bool = True,
                 decoder_dim: int = 512, decoder_depth: int = 8, decoder_heads: int = 16,
                 **kwargs) -> None:
        if getattr(encoder, "forward_tokens", None) is None or not hasattr(encoder, "embed_patches"):
            raise ValueError(f"MAE needs a ViT encoder with patch tokens; {encoder.arch!r} has none "
                             f"(use e.g. vit_small_patch16_224, vit2d_small or vit3d_small)")
        super().__init__(encoder, method_hparams=dict(
            mask_ratio=mask_ratio, norm_pix_loss=norm_pix_loss, decoder_dim=decoder_dim,
            decoder_depth=decoder_depth, decoder_heads=decoder_heads), **kwargs)
        from timm.models.vision_transformer import Block

        self.patch_size = tuple(encoder.patch_size)
        self.groups = getattr(encoder, "channel_groups", None) or [list(range(encoder.in_chans))]
        patch_vol = math.prod(self.patch_size)
        self.decoder_embed = nn.Linear(encoder.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_group_embed = (nn.Parameter(torch.zeros(1, len(self.groups), 1, decoder_dim))
                                    if len(self.groups) > 1 else None)
        self.decoder_blocks = nn.Sequential(*[Block(decoder_dim, decoder_heads, qkv_bias=True)
                                              for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.decoder_pred = nn.ModuleList(nn.Linear(decoder_dim, patch_vol * len(g))
                                          for g in self.groups)
        self.decoder_pos = PositionTable(grid_shape(encoder.input_size, self.patch_size), decoder_dim,
                                         make=decoder_pos_embed)
        nn.init.normal_(self.mask_token, std=0.02)
        if self.decoder_group_embed is not None:
            nn.init.normal_(self.decoder_group_embed, std=0.02)

    def compile_targets(self):
        # MAE calls the encoder's token steps, not its forward: compile the block stacks.
        return [self.encoder.token_blocks, self.decoder_blocks]

    def method_facts(self):
        hp = self.hparams
        return {"mask_ratio": hp.mask_ratio, "norm_pix_loss": hp.norm_pix_loss,
                "patch_size": list(self.patch_size), "channel_groups": self.groups,
                "decoder": [hp.decoder_dim, hp.decoder_depth]}

    def forward_encoder(self, x: torch.Tensor, mask_ratio: float):
        """x (B, C, *S) -> latent (B, P + K, D) of the visible tokens, mask (B, N) with 1 = masked,
        restore (B, N) indices that undo the shuffle."""
        tokens = self.encoder.embed_patches(x)
        b, n, _ = tokens.shape
        keep, mask, restore = random_masking(b, n, mask_ratio, device=x.device)
        latent = self.encoder.encode_tokens(gather_tokens(tokens, keep))
        return latent, mask, restore

    def forward_decoder(self, latent: torch.Tensor, restore: torch.Tensor, grid,
                        only: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Predict pixels: by default of every patch, one (B, n, prod(p) * C_g) tensor per channel
        group, n = prod(grid). With `only` (B, M) token indices (e.g. `masked_indices`; one
        channel group), just those tokens: [(B, M, prod(p) * C)]. The loss needs only the masked
        patches, so training skips the final norm and prediction of the visible quarter."""
        p = self.encoder.num_prefix_tokens
        y = self.decoder_embed(latent)
        prefix, visible = y[:, :p], y[:, p:]
        b, n = restore.shape
        fill = self.mask_token.to(y.dtype).expand(b, n - visible.shape[1], -1)
        full = gather_tokens(torch.cat([visible, fill], dim=1), restore)       # original order
        n_groups = len(self.groups)
        full = full.view(b, n_groups, n // n_groups, -1) + self.decoder_pos(grid, y.dtype)
        if self.decoder_group_embed is not None:
            full = full + self.decoder_group_embed.to(y.dtype)
        y = self.decoder_blocks(torch.cat([prefix, full.flatten(1, 2)], dim=1))[:, p:]
        if only is not None:
            if n_groups > 1:
                raise ValueError("forward_decoder(only=...) predicts one channel group; with "
                                 f"{n_groups} groups each has its own prediction head")
            return [self.decoder_pred[0](self.decoder_norm(gather_tokens(y, only)))]
        y = self.decoder_norm(y).view(b, n_groups, n // n_groups, -1)
        return [head(y[:, i]) for i, head in enumerate(self.decoder_pred)]

    def patch_targets(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per channel group, the pixels each prediction should reproduce: (B, n, prod(p) * C_g)."""
        return [patchify(x[:, g], self.patch_size) for g in self.groups]

    def forward_loss(self, x: torch.Tensor, preds: list[torch.Tensor], mask: torch.Tensor,
                     only: torch.Tensor | None = None) -> torch.Tensor:
        """Mean squared error over masked patches only, float32.

        preds: per channel group, predictions of every token (B, n, F_g), with mask (B, N),
        1 = masked; or, with `only` (B, M) the indices of the masked tokens (one group), a single
        (B, M, F) tensor of their predictions (forward_decoder(only=...)); `mask` is then unused.
        """
        with torch.autocast(x.device.type, enabled=False):
            targets = self.patch_targets(x.float())
            if only is not None:
                return self._patch_errors(gather_tokens(targets[0], only), preds[0]).mean()
            per_token = torch.cat([self._patch_errors(t, pred).mean(dim=-1)
                                   for t, pred in zip(targets, preds)], dim=1)   # (B, N)
            return (per_token * mask).sum() / mask.sum()

    def _patch_errors(self, target: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Squared errors (B, n, F) of predictions against pixels, per-patch normalised pixels
        with norm_pix_loss (each patch's own mean and unbiased std, as the MAE paper)."""
        if self.hparams.norm_pix_loss:
            var, mean = torch.var_mean(target, dim=-1, keepdim=True)
            target = (target - mean) * torch.rsqrt(var + 1e-6)
        return (pred.float() - target) ** 2

    def compute_loss(self, views):
        x = views[0]
        grid = grid_shape(x.shape[2:], self.patch_size)
        latent, mask, restore = self.forward_encoder(x, self.hparams.mask_ratio)
        if len(self.groups) > 1:
            preds = self.forward_decoder(latent, restore, grid)
            loss = self.forward_loss(x, preds, mask)
        else:
            # Predict and score the masked patches only: a quarter less of the decoder's norm,
            # head and loss, the same loss value.
            only = masked_indices(restore, latent.shape[1] - self.encoder.num_prefix_tokens)
            loss = self.forward_loss(x, self.forward_decoder(latent, restore, grid, only), mask, only)
        return loss, self.encoder.pool_tokens(latent)
