"""2D encoders from timm, built for the real channel count.

The timm model is kept whole as `self.model`, so `timm_state_dict()` returns timm's own keys and
an exported file loads straight into `timm.create_model(arch, num_classes=0, in_chans=C, ...)`.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .encoder import Encoder, TokenEncoder


def _create_timm(arch: str, in_chans: int, input_size: tuple[int, ...], **kwargs: Any):
    import timm

    if not timm.is_model(arch):
        raise ValueError(f"unknown timm architecture {arch!r}; see timm.list_models() for names "
                         f"(3D encoders are 'vit3d_tiny|small|base' and 'resnet3d_10|18|34|50')")
    base = dict(pretrained=False, num_classes=0, in_chans=in_chans, **kwargs)
    try:
        # ViT-family constructors take img_size (their position table depends on it) and
        # dynamic_img_size (so DINO's small local crops and other tile sizes work).
        vit_kwargs = dict(img_size=input_size, dynamic_img_size=True)
        vit_kwargs.update(kwargs)
        return timm.create_model(arch, **{**base, **vit_kwargs})
    except TypeError:
        # CNNs (ResNet, ConvNeXt, ...) reject img_size: their constructors have no such argument.
        return timm.create_model(arch, **base)


def _is_timm_vit(model) -> bool:
    from timm.models.vision_transformer import VisionTransformer

    return isinstance(model, VisionTransformer)


class TimmCNNEncoder(Encoder):
    """Any timm CNN (ResNet, ConvNeXt, EfficientNet, ...): pooled features only."""

    forward_tokens = None

    def __init__(self, arch: str, in_chans: int, spatial_dims: int, input_size: Sequence[int],
                 channel_names: Sequence[str] | None = None, model=None, **kwargs: Any) -> None:
        super().__init__(arch, in_chans, spatial_dims, input_size, channel_names, **kwargs)
        self.model = model if model is not None else _create_timm(arch, in_chans, self.input_size,
                                                                  **kwargs)
        self.embed_dim = int(self.model.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, Y, X) -> (B, embed_dim) globally pooled features (timm's pre-logits)."""
        return self.model(x)

    def timm_state_dict(self) -> dict[str, torch.Tensor]:
        """State dict with timm's own keys (loads into timm.create_model(arch, num_classes=0))."""
        return self.model.state_dict()


class TimmViTEncoder(TokenEncoder):
    """A timm VisionTransformer, with the token-level steps MAE uses."""

    def __init__(self, arch: str, in_chans: int, spatial_dims: int, input_size: Sequence[int],
                 channel_names: Sequence[str] | None = None, model=None, **kwargs: Any) -> None:
        super().__init__(arch, in_chans, spatial_dims, input_size, channel_names, **kwargs)
        self.model = model if model is not None else _create_timm(arch, in_chans, self.input_size,
                                                                  **kwargs)
        self.embed_dim = int(self.model.num_features)
        self.patch_size = tuple(int(p) for p in self.model.patch_embed.patch_size)
        self.num_prefix_tokens = int(self.model.num_prefix_tokens)

    def timm_state_dict(self) -> dict[str, torch.Tensor]:
        """State dict with timm's own keys (loads into timm.create_model(arch, num_classes=0))."""
        return self.model.state_dict()

    def _patch_pos_embed(self, grid: tuple[int, int]) -> torch.Tensor | None:
        from timm.layers import resample_abs_pos_embed

        m = self.model
        if m.pos_embed is None:
            return None
        pos = m.pos_embed if m.no_embed_class else m.pos_embed[:, m.num_prefix_tokens:]
        if tuple(grid) != tuple(m.patch_embed.grid_size):
            pos = resample_abs_pos_embed(pos, new_size=grid, old_size=m.patch_embed.grid_size,
                                         num_prefix_tokens=0)
        return pos

    def embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, Y, X) -> (B, N, D) patch tokens plus their positional embedding."""
        t = self.model.patch_embed(x)
        if t.ndim == 4:  # dynamic_img_size keeps the grid: (B, H, W, D)
            grid = (t.shape[1], t.shape[2])
            t = t.flatten(1, 2)
        else:
            grid = tuple(s // p for s, p in zip(x.shape[2:], self.patch_size))
        pos = self._patch_pos_embed(grid)
        return t if pos is None else t + pos

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, K, D) positioned patch tokens -> (B, P + K, D): prefix tokens, blocks, final norm."""
        m = self.model
        prefix = [t for t in (m.cls_token, m.reg_token) if t is not None]
        if prefix:
            prefix = torch.cat(prefix, dim=1)
            if m.pos_embed is not None and not m.no_embed_class:
                prefix = prefix + m.pos_embed[:, :m.num_prefix_tokens]
            prefix = [prefix.expand(tokens.shape[0], -1, -1)]
        x = torch.cat(prefix + [tokens], dim=1) if prefix else tokens
        x = m.norm_pre(m.pos_drop(x))
        x = m.blocks(x)
        return m.norm(x)

    @property
    def token_blocks(self) -> torch.nn.Module:
        return self.model.blocks

    def pool_tokens(self, out: torch.Tensor) -> torch.Tensor:
        """timm's own pooling (cls token or average, per the model's global_pool), -> (B, D)."""
        return self.model.forward_head(out, pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, Y, X) -> (B, embed_dim); timm's own forward path."""
        return self.model(x)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, Y, X) -> (B, N, embed_dim) patch tokens after the final norm."""
        return self.model.forward_features(x)[:, self.num_prefix_tokens:]
