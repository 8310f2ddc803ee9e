"""domainssl.models: encoders (timm 2D with any channel count, 3D ViT, MONAI 3D ResNet) and
patchify/masking helpers.

Names are re-exported lazily so `import domainssl` does not import torch.
"""

from .._lazy import lazy_getattr

_EXPORTS = {
    "build_encoder": "build",
    "Encoder": "encoder",
    "TokenEncoder": "encoder",
    "TimmCNNEncoder": "timm_encoder",
    "TimmViTEncoder": "timm_encoder",
    "ViTEncoder": "vit_nd",
    "sincos_pos_embed": "vit_nd",
    "MonaiResNet3DEncoder": "cnn3d",
    "patchify": "patches",
    "unpatchify": "patches",
    "random_masking": "patches",
    "gather_tokens": "patches",
    "masked_indices": "patches",
    "grid_shape": "patches",
    "num_kept": "patches",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
