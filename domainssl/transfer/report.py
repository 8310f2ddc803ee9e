"""Label-efficiency reports: a table for stdout, results.json / results.csv and a PNG plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

COLUMNS = ("encoder", "mode", "shots", "labels_per_class", "n_train", "n_test", "seeds",
           "accuracy_mean", "accuracy_std", "balanced_accuracy_mean", "balanced_accuracy_std",
           "macro_f1_mean", "macro_f1_std")


def format_table(rows: Sequence[dict[str, Any]], title: str | None = None) -> str:
    """A plain-text table: one line per (encoder, mode), one column per shots value.

    Cells read `acc ± std / bal` (accuracy mean ± std over seeds, balanced accuracy mean), percent.
    """
    shots = []
    for r in rows:
        if r["shots"] not in shots:
            shots.append(r["shots"])
    keys = []
    for r in rows:
        if (r["encoder"], r["mode"]) not in keys:
            keys.append((r["encoder"], r["mode"]))
    cell = {(r["encoder"], r["mode"], r["shots"]): r for r in rows}
    head = ["encoder", "mode"] + [f"k={s}" for s in shots]
    body = []
    for enc, mode in keys:
        line = [enc, mode]
        for s in shots:
            r = cell.get((enc, mode, s))
            line.append("-" if r is None else
                        f"{r['accuracy_mean']:.1f} ± {r['accuracy_std']:.1f} / {r['balanced_accuracy_mean']:.1f}")
        body.append(line)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    fmt = lambda cols: "  ".join(str(c).ljust(w) for c, w in zip(cols, widths))  # noqa: E731
    lines = []
    if title:
        lines.append(title)
    lines += [fmt(head), fmt(["-" * w for w in widths])] + [fmt(b) for b in body]
    lines.append("cells: accuracy mean ± std over seeds / balanced accuracy mean (%), k = labels per class")
    return "\n".join(lines)


def write_results(rows: Sequence[dict[str, Any]], out_dir, meta: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write results.json (a list of rows), results.csv and meta.json (when given); return paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "csv": out_dir / "results.csv"}
    paths["json"].write_text(json.dumps(list(rows), indent=2) + "\n")
    extra = [k for r in rows for k in r if k not in COLUMNS]
    fields = list(COLUMNS) + sorted(set(extra))
    with open(paths["csv"], "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow(r)
    if meta is not None:
        paths["meta"] = out_dir / "meta.json"
        paths["meta"].write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return paths


def plot_results(rows: Sequence[dict[str, Any]], path, title: str = "") -> Path:
    """Accuracy and balanced accuracy (mean ± std over seeds) against labels per class (log x).

    "all" is drawn at the mean number of labels per class it used.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    keys = []
    for r in rows:
        if (r["encoder"], r["mode"]) not in keys:
            keys.append((r["encoder"], r["mode"]))
    for ax, metric in zip(axes, ("accuracy", "balanced_accuracy")):
        for enc, mode in keys:
            sel = sorted((r for r in rows if r["encoder"] == enc and r["mode"] == mode),
                         key=lambda r: r["labels_per_class"])
            x = [r["labels_per_class"] for r in sel]
            y = [r[f"{metric}_mean"] for r in sel]
            e = [r[f"{metric}_std"] for r in sel]
            ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=f"{enc} ({mode})")
        ax.set_xscale("log")
        ax.set_xlabel("labels per class")
        ax.set_ylabel(f"{metric.replace('_', ' ')} on the test split (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
