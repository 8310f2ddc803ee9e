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
    parser.add_argument("--unit", default="px", help="unit of --patch-size: px, mm, m, µm (default: %(default)s)")
    parser.add_argument("--patches", type=int, default=256, help="patches to sample (default: %(default)s)")
    parser.add_argument("--min-valid", type=float, default=0.5,
                        help="skip patches with a smaller valid (non-nodata) fraction (default: "
                             "%(default)s; recipes use 0.9-0.95)")
    parser.add_argument("--seed", type=int, default=0, help="patch sampling seed (default: %(default)s)")
    parser.add_argument("--channels", nargs="+", metavar="NAME",
                        help="these channels, in this order, of the images that hold them (as "
                             "pretrain's data.channels)")
    parser.add_argument("--spatial-dims", type=int, choices=(2, 3),
                        help="only 2D or only 3D images (as pretrain's data.spatial_dims)")
    parser.add_argument("--formats", nargs="+", metavar="FORMAT",
                        help="only these formats, e.g. dicom nifti (as pretrain's data.formats)")
    parser.add_argument("--out", default="stats.json",
                        help="statistics JSON to write (default: %(default)s); a recipe's data.stats reads it")


def run(args) -> int:
    import json
    import sys

    from ..data.consistency import mixture_messages, record_key, select_consistent
    from ..data.dataset import PatchDataset
    from ..data.samplers import RandomPatchSampler
    from ..data.stats import compute_stats, save_stats
    from ..io.scan import read_manifest

    # sorted as pretraining sorts them: the same images, patches and numbers on every scan
    # (a parallel scan writes records in the order they finish)
    records, dropped = select_consistent(sorted(read_manifest(args.manifest), key=record_key),
                                         args.channels, args.spatial_dims, args.formats)
    for reason, n in dropped.items():
        print(f"left out {n} image(s): {reason} (--channels, --spatial-dims, --formats choose others)")
    for mixed in mixture_messages(records, args.patch_size, args.unit):  # as pretraining warns them
        print(f"warning: {mixed}")
    if not records:
        print(f"domainssl stats: {args.manifest} has no usable image")
        return 1
    if args.patches < 1:
        print("domainssl stats: error: --patches must be at least 1", file=sys.stderr)
        return 2
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
