"""Few-label transfer of an exported encoder, against the same architecture randomly initialised.

For each k in --shots, k labels per class are drawn --seeds times; a linear probe (logistic
regression on standardised frozen features), a cosine kNN and/or full fine-tuning are scored on the
test split. Prints a label-efficiency table and writes results.json, results.csv and results.png.

Labels: a CSV `path,label[,split][,z0,z1,y0,y1,x0,x1]` (paths relative to the CSV, any format
domainssl reads), a folder per class (ROOT/<class>/* or ROOT/{train,test}/<class>/*), or one of
the public sets by name (shared:pneumoniamnist, shared:coffee, shared:jurkat; see datasets/).
Without a split of its own (a split column, train/test folders), a stratified split with
--test-fraction and --split-seed is used; that includes shared:coffee and shared:jurkat (70/30,
seed 0 by default, as their cards report). shared:pneumoniamnist keeps its official MedMNIST
split, and a set with its own split warns that other values of these two options do not apply.

With --compare, each encoder (ENCODER_DIR too) is named by the shortest path ending that tells
them apart (runA/encoder, runB/encoder), then random_init (ENCODER_DIR's architecture, randomly
initialised); alone, ENCODER_DIR's rows are named pretrained.

Example:
  domainssl probe runs/ct_enc --data labels.csv --shots 1,5,10,all --mode linear,knn --out probe_ct
  domainssl probe enc --data shared:jurkat --channel-map bf=Ch3,dna=Ch4,df=Ch6 --out probe_jurkat
  (--channel-map ENCODER=DATA: each encoder channel named with the data channel that feeds it)
"""

from __future__ import annotations

import argparse
import math

HELP = "few-label transfer: linear probe / kNN / fine-tune vs random init, table + plot"


def _number(text: str, convert, valid, expected: str):
    """argparse type helper: `convert(text)` if `valid` says so, else an error saying `expected`."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, found {text!r}") from None
    if not valid(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, found {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (counts of seeds, steps, neighbours, batch items)."""
    return _number(text, int, lambda v: v >= 1, "a whole number >= 1")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (regularisation strength, learning rate)."""
    return _number(text, float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def fraction(text: str) -> float:
    """argparse type: a number strictly between 0 and 1 (both splits must keep some items)."""
    return _number(text, float, lambda v: 0 < v < 1, "a number strictly between 0 and 1 (e.g. 0.3 "
                   "puts 30% of each class in the test split)")


def device_arg(text: str) -> str:
    """argparse type: a torch device this machine has (see `evaluate.check_device`)."""
    if text.strip().lower() == "cpu":  # the default: no torch import just to parse arguments
        return "cpu"
    from ..transfer.evaluate import check_device

    try:
        return check_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser) -> None:
    parser.add_argument("encoder_dir", help="exported encoder directory (from `domainssl export`)")
    parser.add_argument("--data", required=True,
                        help="labels CSV, folder per class, or shared:NAME (pneumoniamnist|coffee|jurkat)")
    parser.add_argument("--out", required=True, help="report directory (results.json/.csv/.png)")
    parser.add_argument("--shots", default="1,5,10,all", help="labels per class, comma separated (default %(default)s)")
    parser.add_argument("--seeds", type=positive_int, default=5, help="draws per shots value (default %(default)s)")
    parser.add_argument("--mode", default="linear",
                        help="comma-separated subset of linear,knn,finetune (default %(default)s)")
    parser.add_argument("--knn-k", type=positive_int, default=20, help="neighbours for kNN (default %(default)s)")
    parser.add_argument("--linear-c", type=positive_float, default=1.0,
                        help="inverse L2 strength of the linear probe (default %(default)s)")
    parser.add_argument("--finetune-steps", type=positive_int, default=100,
                        help="optimizer steps per fine-tune (default %(default)s)")
    parser.add_argument("--finetune-lr", type=positive_float, default=1e-4,
                        help="encoder learning rate for fine-tuning (default %(default)g)")
    parser.add_argument("--layer-decay", type=float, default=0.75,
                        help="layer-wise LR decay for ViTs when fine-tuning (default %(default)s)")
    parser.add_argument("--compare", nargs="*", default=[], metavar="ENCODER_DIR",
                        help="more encoder directories to put in the same table; then every encoder, "
                             "ENCODER_DIR too, is named by the shortest path suffix that tells them "
                             "apart (runA/encoder, runB/encoder) instead of 'pretrained'")
    parser.add_argument("--no-random-init", action="store_true", help="skip the random-init baseline")
    parser.add_argument("--channel-map", default=None,
                        help="data channels for the encoder's channels: indices in encoder order "
                             "('2,1,0') or ENCODER=DATA name pairs ('B04=red,B03=green')")
    parser.add_argument("--normalization", choices=["card", "data"], default="card",
                        help="card: pretraining statistics (checked against the data); data: the "
                             "labeled training images' own statistics (default %(default)s)")
    parser.add_argument("--resize", choices=["resize", "crop"], default=None,
                        help="fit images to the encoder input size by interpolation or centre crop/pad "
                             "(default: crop when the card and the data both have physical pixel "
                             "spacing, e.g. mm or µm, else resize)")
    parser.add_argument("--test-fraction", type=fraction, default=0.3,
                        help="test share of the stratified split made when the data has none of its "
                             "own: a CSV without split column, a folder without train/test, "
                             "shared:coffee, shared:jurkat (default %(default)s; shared:pneumoniamnist "
                             "keeps its official split)")
    parser.add_argument("--split-seed", type=int, default=0,
                        help="seed of that stratified split (default %(default)s)")
    parser.add_argument("--cache-dir", default=None, help="feature cache (default OUT/feature_cache)")
    parser.add_argument("--batch-size", type=positive_int, default=256,
                        help="feature extraction batch size (default %(default)s)")
    parser.add_argument("--device", type=device_arg, default="cpu",
                        help="torch device for features and fine-tuning: cpu, cuda, cuda:N or mps "
                             "(default %(default)s)")


def run(args) -> int:
    import sys
    from pathlib import Path

    from ..transfer.card import CardError, CardMismatchError
    from ..transfer.encoder_io import WeightsMismatchError
    from ..transfer.evaluate import compare_encoders
    from ..transfer.labeled_sets import load_labels
    from ..transfer.fewshot import parse_shots
    from ..transfer.labeled import LabeledDataError
    from ..transfer.report import format_table, plot_results, write_results

    out = Path(args.out)
    modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    try:
        shots = parse_shots(args.shots)
        labeled = load_labels(args.data, args.test_fraction, args.split_seed)
        rows, meta = compare_encoders(
            args.encoder_dir, labeled, shots=shots, seeds=args.seeds, modes=modes, others=args.compare,
            random_init=not args.no_random_init, channel_map=args.channel_map,
            normalization=args.normalization, resize=args.resize, knn_k=args.knn_k, linear_c=args.linear_c,
            finetune_kw={"steps": args.finetune_steps, "lr": args.finetune_lr, "layer_decay": args.layer_decay,
                         "device": args.device},
            cache_dir=args.cache_dir or out / "feature_cache", batch_size=args.batch_size, device=args.device)
    except (CardError, CardMismatchError, WeightsMismatchError, LabeledDataError, ValueError) as exc:
        from ..cli import error_text

        print(f"domainssl probe: error: {error_text(exc)}", file=sys.stderr)
        return 2
    paths = write_results(rows, out, meta)
    plot = plot_results(rows, out / "results.png", title=f"{labeled.name}: {meta['arch']}")
    print(format_table(rows, title=f"Label efficiency on {labeled.name} (test split, {meta['seeds']} seeds)"))
    print(f"wrote {paths['json']}, {paths['csv']}, {plot}")
    return 0
