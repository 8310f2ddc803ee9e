"""Per-channel statistics (mean, std, 1st/99th percentiles) over a sample of patches.

Reads patches of the usable images in a manifest (from `domainssl scan`), never whole files,
and writes a JSON file that view presets (normalisation) and encoder cards use. Nodata pixels
are left out. Pretraining computes the same statistics itself when a recipe gives none.

example:
  domainssl stats s2_manifest.jsonl --patch-size 256 256 --patches 512 --out s2_stats.json
"""

from __future__ import annotations

HELP = "per-channel statistics over a sample of patches from a manifest"


def add_arguments(parser) -> None:
    parser.add_argument("manifest", help="manifest JSONL written by `domainssl scan`")
    parser.add_argument("--patch-size", type=float, nargs="+", default=[64, 64],
                        help="patch size per spatial axis (default: %(default)s)")
    parser.add_argument("--unit", default="px", help="unit of --patch-size: px, mm, m, µm")
    parser.add_argument("--patches", type=int, default=256, help="patches to sample (default: %(default)s)")
    parser.add_argument("--min-valid", type=float, default=0.5,
                        help="skip patches with a smaller valid (non-nodata) fraction")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="stats.json")


def run(args) -> int:
    import json

    from ..data.datamodule import select_consistent
    from ..data.dataset import PatchDataset
    from ..data.samplers import RandomPatchSampler
    from ..data.stats import compute_stats, save_stats
    from ..io.scan import read_manifest

    records, dropped = select_consistent(list(read_manifest(args.manifest)))
    for reason, n in dropped.items():
        print(f"left out {n} image(s): {reason}")
    if not records:
        print(f"domainssl stats: {args.manifest} has no usable image")
        return 1
    per_image = max(1, -(-args.patches // len(records)))
    ds = PatchDataset(records, RandomPatchSampler(args.patch_size, args.unit, min_valid=args.min_valid),
                      patches_per_image=per_image, seed=args.seed)
    step = max(1, len(ds) // args.patches)
    stats = compute_stats((ds[i] for i in range(0, len(ds), step)), records[0]["channel_names"],
                          args.patches)
    save_stats(stats, args.out)
    print(json.dumps({k: stats[k] for k in ("channel_names", "mean", "std", "p01", "p99")}, indent=1))
    print(f"statistics of {stats['n_patches']} patches written to {args.out}")
    return 0
