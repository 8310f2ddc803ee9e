"""Memory layout of convolution weights: channels-last for CNNs on a GPU.

cuDNN's bf16/fp16 convolutions run on tensor cores in NHWC (NDHWC in 3D) layout; with the default
NCHW layout every convolution pays a transpose on each side, which roughly halves a ResNet-50's
training throughput. Only strides change: values, shapes and state_dict keys stay the same.
"""

from __future__ import annotations

import torch
from torch import nn

_LAYOUT = {4: torch.channels_last, 5: torch.channels_last_3d}


def has_spatial_convs(module: nn.Module) -> bool:
    """True if `module` holds a 2D/3D convolution with a kernel larger than 1 (a CNN stem or
    block, not only a ViT's patch embedding, which is a strided matrix product)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)) and m.kernel_size != m.stride:
            return True
    return False


@torch.no_grad()
def to_channels_last(module: nn.Module) -> int:
    """Put every 4-D / 5-D parameter and buffer of `module` in channels-last layout, in place.

    Parameter objects are kept (an optimiser built before still holds them); returns the number
    of tensors whose layout changed.
    """
    changed = 0
    for t in list(module.parameters()) + list(module.buffers()):
        fmt = _LAYOUT.get(t.dim())
        if fmt is not None and not t.is_contiguous(memory_format=fmt):
            t.data = t.data.contiguous(memory_format=fmt)
            changed += 1
    return changed
