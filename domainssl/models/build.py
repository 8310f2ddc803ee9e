"""`build_encoder`: one entry point for every encoder domainssl knows."""

from __future__ import annotations

from typing import Any, Sequence

from .encoder import Encoder


def build_encoder(arch: str, in_chans: int, spatial_dims: int, input_size: Sequence[int],
                  **kwargs: Any) -> Encoder:
    """Build an encoder for channel-first inputs (B, in_chans, *input_size).

    arch:
      - any timm name for 2D ("resnet18", "convnext_atto", "vit_small_patch16_224", ...), built
        with pretrained=False, num_classes=0 and the real in_chans; ViTs get img_size=input_size;
      - "vit2d_<size>" / "vit3d_<size>" (size tiny|small|base|large): our ViT with sin-cos
        positions, `patch_size` (anisotropic allowed) and optional `channel_groups`;
      - "resnet3d_<depth>" (10|18|34|50): MONAI's 3D ResNet.
    spatial_dims: 2 or 3; input_size: one size per spatial axis (pixels/voxels).
    kwargs: `channel_names` (kept in the config and the card) and architecture options.
    Returns an `Encoder` whose `config` rebuilds it: `build_encoder(**enc.config)`.
    """
    if arch.startswith(("vit2d_", "vit3d_")):
        from .vit_nd import build_vit

        return build_vit(arch, in_chans, spatial_dims, input_size, **kwargs)
    if arch.startswith("resnet3d_"):
        if spatial_dims != 3:
            raise ValueError(f"{arch} is a 3D network; got spatial_dims={spatial_dims}")
        from .cnn3d import MonaiResNet3DEncoder

        return MonaiResNet3DEncoder(arch, in_chans, spatial_dims, input_size, **kwargs)
    if spatial_dims != 2:
        raise ValueError(f"timm architectures are 2D; for spatial_dims={spatial_dims} use "
                         f"'vit3d_tiny|small|base' or 'resnet3d_18'")
    from .timm_encoder import TimmCNNEncoder, TimmViTEncoder, _create_timm, _is_timm_vit

    channel_names = kwargs.pop("channel_names", None)
    model = _create_timm(arch, in_chans, tuple(input_size), **kwargs)
    cls = TimmViTEncoder if _is_timm_vit(model) else TimmCNNEncoder
    return cls(arch, in_chans, spatial_dims, input_size, channel_names=channel_names, model=model,
               **kwargs)
