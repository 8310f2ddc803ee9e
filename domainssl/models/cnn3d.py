"""3D CNN encoders from MONAI (ResNet-10/18/34/50 for volumes)."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .encoder import Encoder

_DEPTHS = ("10", "18", "34", "50")


class MonaiResNet3DEncoder(Encoder):
    """MONAI's 3D ResNet without classifier: (B, C, Z, Y, X) -> (B, embed_dim) pooled features.

    Names: 'resnet3d_10', 'resnet3d_18', 'resnet3d_34', 'resnet3d_50'. Extra kwargs go to MONAI's
    ResNet (e.g. conv1_t_stride=2, no_max_pool=True, widen_factor=0.5 for tiny test models).
    """

    forward_tokens = None

    def __init__(self, arch: str, in_chans: int, spatial_dims: int, input_size: Sequence[int],
                 channel_names: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(arch, in_chans, spatial_dims, input_size, channel_names, **kwargs)
        depth = arch.split("_", 1)[1] if "_" in arch else ""
        if depth not in _DEPTHS:
            raise ValueError(f"unknown 3D ResNet {arch!r}; use resnet3d_{{{','.join(_DEPTHS)}}}")
        from monai.networks.nets import resnet

        self.model = getattr(resnet, f"resnet{depth}")(
            pretrained=False, spatial_dims=spatial_dims, n_input_channels=in_chans,
            feed_forward=False, **kwargs)
        # MONAI keeps no feature-width attribute; the last block's output width is the embedding.
        last = self.model.layer4[-1]
        self.embed_dim = int((last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, Z, Y, X) -> (B, embed_dim)."""
        return self.model(x)
