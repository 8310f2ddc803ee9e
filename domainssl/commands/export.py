"""Export the encoder of a pretraining run (or checkpoint) as safetensors + an encoder card.

ENCODER_DIR gets model.safetensors (weights; 2D timm encoders keep timm's key names),
encoder.json (the card: architecture and build args, channels, input size, spacing, normalisation
and archive statistics, method and hyper-parameters, data summary, final loss and monitors) and a
README.md. Checkpoints are read with torch.load(weights_only=True): nothing is unpickled.
DINO runs export the EMA teacher (as the DINO paper evaluates), other methods the online encoder;
the card's method.exported says which.

Example:
  domainssl export runs/s2 --out encoders/s2_simclr            # the run's last checkpoint
  domainssl export runs/s2/checkpoints/step0005000.ckpt --out encoders/s2_step5000
Then in Python: enc = domainssl.load_encoder("encoders/s2_simclr")
"""

from __future__ import annotations

HELP = "export a run's encoder: model.safetensors + encoder.json card + README.md"


def add_arguments(parser) -> None:
    parser.add_argument("run", metavar="RUN_OR_CKPT", help="run directory (uses checkpoints/last.ckpt) or a .ckpt file")
    parser.add_argument("--out", required=True, help="encoder directory to write")


def run(args) -> int:
    import sys

    from ..transfer.card import CardError
    from ..transfer.export_run import export_run

    try:
        out = export_run(args.run, args.out)
    except (CardError, FileNotFoundError, FileExistsError, KeyError, ValueError) as exc:
        print(f"domainssl export: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # writing the encoder directory: permissions, a full disk, ...
        print(f"domainssl export: error: cannot write {args.out}: {exc}", file=sys.stderr)
        return 2
    print(f"[domainssl] wrote encoder {out} (model.safetensors, encoder.json, README.md)")
    print(f"[domainssl] next: domainssl probe {out} --data LABELS.csv --out {out}/probe")
    return 0
