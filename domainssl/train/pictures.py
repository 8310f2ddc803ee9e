"""Pictures of a pretraining run: loss and collapse-monitor curves, augmented views, MAE reconstructions.

All figures use matplotlib's Agg backend (no display needed). 3D images are shown by their middle
slice along Z; images with three or more channels show the first three as RGB, others channel 0.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# Channel names of true-colour red, green, blue (Sentinel-2 bands; plain colour names).
_TRUE_COLOUR = [("B04", "B03", "B02"), ("RED", "GREEN", "BLUE"), ("R", "G", "B")]


def display_channels(channel_names: Sequence[str] | None) -> list[int] | None:
    """Indices of the red, green and blue channels when the names say which they are (Sentinel-2
    B04/B03/B02, red/green/blue), so multispectral pictures show true colour rather than the
    first three bands (B01/B02/B03: coastal aerosol, blue, green). None otherwise."""
    if not channel_names:
        return None
    upper = [str(n).upper() for n in channel_names]
    for triple in _TRUE_COLOUR:
        if all(t in upper for t in triple):
            return [upper.index(t) for t in triple]
    return None


def _display(img, rgb: Sequence[int] | None = None) -> np.ndarray:
    """(C, *S) tensor/array -> (Y, X) or (Y, X, 3) float in [0, 1] (mid Z slice for 3D); `rgb`
    picks the channels shown as red, green, blue (default the first three)."""
    arr = np.asarray(img.detach().float().cpu() if hasattr(img, "detach") else img, dtype=np.float32)
    if arr.ndim == 4:
        arr = arr[:, arr.shape[1] // 2]
    if rgb is not None and arr.shape[0] > max(rgb):
        arr = arr[list(rgb)]
    arr = arr[:3] if arr.shape[0] >= 3 else arr[:1]
    lo, hi = np.percentile(arr, [1, 99]) if arr.size else (0.0, 1.0)
    arr = np.clip((arr - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    return arr.transpose(1, 2, 0) if arr.shape[0] == 3 else arr[0]


def _metric_files(path) -> list[Path]:
    """A metrics.csv, or a run's csv/ folder: the parts earlier (resumed) segments left
    (metrics.part1.csv, part2, ...) in order, then metrics.csv."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    parts = sorted(path.glob("metrics.part*.csv"), key=lambda p: int(p.stem.split("part")[-1] or 0))
    return parts + [p for p in [path / "metrics.csv"] if p.is_file()]


def read_metrics(path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Lightning CSVLogger metrics.csv (or a run's csv/ folder, all its segments) ->
    {metric: (steps, values)} for the non-empty cells, in step order."""
    segments = []  # per file: [(step, metric, value)]
    for csv_path in _metric_files(path):
        with open(csv_path, newline="") as fh:
            segments.append([(float(row["step"]), key, float(value))
                             for row in csv.DictReader(fh) if row.get("step") not in (None, "")
                             for key, value in row.items()
                             if key not in ("step", "epoch") and value not in (None, "")])
    # A run stopped after its last checkpoint logged steps that its resumption logs again: each
    # segment keeps only the steps before the next segment's first.
    series: dict[str, list[tuple[float, float]]] = {}
    cutoff = float("inf")
    for rows in reversed(segments):
        for step, key, value in rows:
            if step < cutoff:
                series.setdefault(key, []).append((step, value))
        cutoff = min([cutoff] + [step for step, _, _ in rows])
    out = {}
    for key, rows in series.items():
        rows.sort(key=lambda r: r[0])
        out[key] = (np.array([s for s, _ in rows]), np.array([x for _, x in rows]))
    return out


FEW_POINTS = 30  # curves of at most this many logged points show each point as a marker


def plot_curves(metrics_path, out_png, metrics: Sequence[str] = ("train/loss", "train/emb_std", "val/knn_acc")) -> Path | None:
    """Loss and collapse-monitor curves against step from a metrics.csv or a run's csv/ folder;
    None when the log holds none of `metrics`."""
    data = read_metrics(metrics_path)
    shown = [m for m in metrics if m in data]
    if not shown:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(shown), figsize=(4.5 * len(shown), 3.5), squeeze=False)
    for ax, name in zip(axes[0], shown):
        steps, values = data[name]
        # a line through one point draws nothing: few points are drawn as markers too
        ax.plot(steps, values, lw=1, marker="o" if len(steps) <= FEW_POINTS else None, ms=3)
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        if name == "train/emb_std":
            ax.set_ylim(bottom=0)
            ax.set_title(name + " (near 0 = collapse)")
    return _save(plt, fig, out_png)


def _show_image(ax, image, title: str | None, fontsize: int, rgb: Sequence[int] | None = None) -> None:
    """One image cell of a sheet (a 2D view, or the mid slice of a 3D one), without ticks."""
    shown = _display(image, rgb)
    ax.imshow(shown, cmap=None if shown.ndim == 3 else "gray")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize)


def _save(plt, fig, out_png, title: str | None = None) -> Path:
    """Lay out, write the PNG and free the figure; returns the path."""
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


def views_sheet(views: Sequence, out_png, n_samples: int = 4, title: str = "augmented views",
                channel_names: Sequence[str] | None = None) -> Path:
    """A grid: one row per sample, one column per view (views: list of (B, C, *S) tensors);
    true colour where `channel_names` say which channels are red, green and blue."""
    rgb = display_channels(channel_names)
    plt = _plt()
    rows = min(n_samples, int(views[0].shape[0]))
    cols = len(views)
    fig, axes = plt.subplots(rows, cols, figsize=(max(1.8 * cols, 4.0), 1.8 * rows), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            _show_image(axes[r][c], views[c][r],
                        f"view {c} {tuple(views[c].shape[2:])}" if r == 0 else None, fontsize=7, rgb=rgb)
    return _save(plt, fig, out_png, title)


def mae_reconstructions(method, x, out_png, n_samples: int = 4,
                        channel_names: Sequence[str] | None = None) -> Path:
    """Input, masked input and reconstruction of an MAE method on a batch `x` (B, C, *S).

    Predictions of norm-pix-loss models are mapped back with each patch's own mean and std.
    """
    import torch

    from ..models.patches import grid_shape, patchify, unpatchify

    x = x[:n_samples].to(method.device).float()
    was_training = method.training
    method.eval()
    with torch.no_grad():
        grid = grid_shape(x.shape[2:], method.patch_size)
        latent, mask, restore = method.forward_encoder(x, method.hparams.mask_ratio)
        preds = method.forward_decoder(latent, restore, grid)
        recon = torch.zeros_like(x)
        n_groups = len(method.groups)
        per_group = mask.shape[1] // n_groups
        masked_in = x.clone()
        for gi, (group, pred) in enumerate(zip(method.groups, preds)):
            target = patchify(x[:, group], method.patch_size)
            if method.hparams.norm_pix_loss:
                mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
                pred = pred * (var + 1e-6).sqrt() + mean
            m = mask[:, gi * per_group:(gi + 1) * per_group, None].to(pred.dtype)
            recon[:, group] = unpatchify(pred * m + target * (1 - m), method.patch_size, grid, len(group))
            masked_in[:, group] = unpatchify(target * (1 - m), method.patch_size, grid, len(group))
    method.train(was_training)
    plt = _plt()
    rows = x.shape[0]
    fig, axes = plt.subplots(rows, 3, figsize=(5.4, 1.8 * rows), squeeze=False)
    for r in range(rows):
        for c, (img, name) in enumerate(((x[r], "input"), (masked_in[r], "visible"), (recon[r], "reconstruction"))):
            _show_image(axes[r][c], img, name if r == 0 else None, fontsize=8,
                        rgb=display_channels(channel_names))
    title = "MAE reconstructions" + (" (mid Z slice)" if x.ndim == 5 else "")
    return _save(plt, fig, out_png, title)
