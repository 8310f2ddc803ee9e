"""A tiny structured dataset for learning tests, and simple torch view makers.

Four classes of oriented stripes (0, 45, 90, 135 degrees) with random period and phase, buried
under nuisances that dominate pixel space: a random brightness offset, contrast, a bright blob at
a random place, and noise. A random encoder sees mostly the nuisances; an SSL method trained with
augmentations that vary the nuisances should learn the orientation. The view makers use plain
torch (translations, brightness/contrast jitter, blobs, noise) on purpose: no flips, which would
turn 45 degrees into 135.
"""

from __future__ import annotations

import math

import torch

SIZE = 32
N_CLASSES = 4


def _blob(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    cy, cx = (torch.rand(2, n, 1, 1, generator=g) * size)
    sigma = 3 + 5 * torch.rand(n, 1, 1, generator=g)
    amp = 1.5 * torch.rand(n, 1, 1, generator=g)
    return amp * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))


def make_stripes(n: int, seed: int, size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 1, size, size) float32 images and (n,) labels in 0..3, balanced."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % N_CLASSES
    angle = labels.float() * math.pi / 4
    period = 4 + 4 * torch.rand(n, generator=g)
    phase = 2 * math.pi * torch.rand(n, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    proj = xx * torch.cos(angle)[:, None, None] + yy * torch.sin(angle)[:, None, None]
    img = torch.sin(2 * math.pi * proj / period[:, None, None] + phase[:, None, None])
    img = img * (0.3 + 0.7 * torch.rand(n, 1, 1, generator=g))
    img = img + torch.randn(n, 1, 1, generator=g) + _blob(n, size, g)
    return img.unsqueeze(1).float(), labels


def augment(x: torch.Tensor, g: torch.Generator, out_size: int | None = None) -> torch.Tensor:
    """A random view of each image x (B, C, S, S): translate (circular shift, then crop to
    out_size), brightness/contrast jitter, a random blob and noise."""
    b, c, s, _ = x.shape
    out_size = out_size or s
    views = []
    for i in range(b):
        dy, dx = torch.randint(0, s, (2,), generator=g).tolist()
        v = torch.roll(x[i], shifts=(dy, dx), dims=(1, 2))[:, :out_size, :out_size]
        views.append(v)
    v = torch.stack(views)
    # Standardise, then draw a fresh brightness and contrast: the image's own offset is not
    # shared between views, so a method cannot match views by brightness.
    v = (v - v.mean(dim=(1, 2, 3), keepdim=True)) / (v.std(dim=(1, 2, 3), keepdim=True) + 1e-6)
    v = v * (0.5 + torch.rand(b, 1, 1, 1, generator=g)) + torch.randn(b, 1, 1, 1, generator=g)
    v = v + _blob(b, out_size, g).unsqueeze(1) + 0.2 * torch.randn(v.shape, generator=g)
    return v


class ViewDataset(torch.utils.data.Dataset):
    """Yields {"views": [...], "label": y}: `n_global` views of full size, `n_local` smaller."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, n_global: int = 2,
                 n_local: int = 0, local_size: int = 16, seed: int = 0) -> None:
        self.images, self.labels = images, labels
        self.n_global, self.n_local, self.local_size = n_global, n_local, local_size
        self.seed = seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(self.seed * 100003 + i + torch.randint(1 << 30, ()).item())
        x = self.images[i:i + 1]
        views = [augment(x, g)[0] for _ in range(self.n_global)]
        views += [augment(x, g, self.local_size)[0] for _ in range(self.n_local)]
        return {"views": views, "label": self.labels[i]}


class BatchViews(torch.nn.Module):
    """The `batch_views` form: {"image": (B, C, S, S)} -> {"views": [...]}, made on the batch's
    device after transfer (what a GPU view generator does), `n_global` full-size views first,
    then `n_local` views of `local_size`."""

    def __init__(self, n_global: int = 2, n_local: int = 0, local_size: int = 16, seed: int = 0):
        super().__init__()
        self.n_global, self.n_local, self.local_size = n_global, n_local, local_size
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, batch: dict) -> dict:
        x = batch["image"]
        views = [augment(x, self.generator) for _ in range(self.n_global)]
        views += [augment(x, self.generator, self.local_size) for _ in range(self.n_local)]
        return {"views": views}
