"""Fine-tuning helpers: the training-time flips."""

import pytest
import torch

from domainssl.transfer.finetune import _augment


@pytest.mark.parametrize("spatial", [(4, 5), (3, 4, 5)])
def test_flips_move_pixels_along_spatial_axes_only(spatial):
    # channel c holds the value c everywhere, plus a marker in one corner: a flip may move the
    # marker to another corner but must never reorder channels
    torch.manual_seed(0)
    x = torch.zeros(64, 3, *spatial)
    for c in range(3):
        x[:, c] = c
    corner = (slice(None), slice(None)) + (0,) * len(spatial)
    x[corner] += 100
    y = _augment(x.clone())
    for c in range(3):
        assert torch.equal(y[:, c].flatten(1).min(dim=1).values, torch.full((64,), float(c)))
    moved = [tuple(int(i) for i in torch.nonzero(y[b, 0] > 50)[0]) for b in range(64)]
    # every axis is flipped for about half of the samples, independently
    for axis, size in enumerate(spatial):
        flipped = sum(m[axis] == size - 1 for m in moved)
        assert 16 < flipped < 48, (axis, flipped)
        assert all(m[axis] in (0, size - 1) for m in moved)
