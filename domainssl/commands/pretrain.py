"""Self-supervised pretraining from a YAML recipe into a run directory.

The recipe names the data, views, encoder, method and trainer (see recipes/); any key can be
overridden on the command line with a dotted name and a YAML value. The run directory gets the
resolved config, resumable checkpoints, TensorBoard and CSV logs, run.json (facts for the
encoder card) and pictures (loss / collapse curves, augmented views, MAE reconstructions).

Example:
  domainssl pretrain --config recipes/sentinel2_mae.yaml --run-dir runs/s2 \\
      --data.root /data/s2_archive --data.batch_size 64 --trainer.max_steps 20000 --trainer.accelerator gpu
  domainssl pretrain --resume runs/s2 --trainer.max_steps 40000      # continue a run
"""

from __future__ import annotations

HELP = "SSL pretraining from a recipe (data, views, encoder, method, trainer) into a run dir"
ACCEPTS_OVERRIDES = True


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="recipe YAML (see recipes/); optional with --resume")
    parser.add_argument("--run-dir", help="run directory to create (default runs/<recipe name>)")
    parser.add_argument("--resume", metavar="RUN", help="continue RUN from its last checkpoint "
                        "(its config.yaml, manifest and statistics are reused)")
    parser.epilog = ("Overrides: --data.root PATH --data.batch_size N --trainer.max_steps N "
                     "--trainer.max_epochs N (then the recipe's max_steps no longer applies) "
                     "--trainer.accelerator cpu|gpu, or any --section.key VALUE")


def run(args) -> int:
    import sys
    from pathlib import Path

    from ..data.errors import DataSetupError
    from ..io.errors import ImageReadError
    from ..train.pretraining import RunStopped
    from ..train.recipe import RecipeError, apply_overrides, load_recipe

    overrides = getattr(args, "overrides", None) or []
    try:
        if args.resume:
            run_dir = Path(args.resume)
            if not (run_dir / "config.yaml").is_file() and not args.config:
                raise RecipeError(f"--resume {run_dir}: no run there (a run folder holds config.yaml "
                                  f"and checkpoints/); give the folder a pretrain run wrote")
            config = Path(args.config) if args.config else run_dir / "config.yaml"
            if args.run_dir and Path(args.run_dir) != run_dir:
                raise RecipeError("--resume RUN continues in RUN; leave out --run-dir or give the same folder")
        elif args.config:
            config = Path(args.config)
            run_dir = None
        else:
            raise RecipeError("give --config RECIPE.yaml (see recipes/) or --resume RUN")
        recipe = apply_overrides(load_recipe(config), overrides, source=str(config))
        if run_dir is None:
            run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / (recipe.get("name") or config.stem)
        if recipe["data"].get("root") is None and recipe["data"].get("manifest") is None:
            raise RecipeError("the recipe has no data: pass --data.root ARCHIVE (or --data.manifest "
                              "manifest.jsonl from `domainssl scan`)")
        from ..train.pretraining import run_pretraining

        facts = run_pretraining(recipe, run_dir, resume=bool(args.resume))
    except RunStopped as exc:
        print(f"domainssl pretrain: {exc}", file=sys.stderr)
        return exc.exit_code
    except (RecipeError, DataSetupError, ImageReadError) as exc:
        from ..cli import error_text

        print(f"domainssl pretrain: error: {error_text(exc)}", file=sys.stderr)
        return 2
    from ..ranks import is_rank_zero

    if not is_rank_zero():  # the other processes of a multi-device run: rank 0 reports
        return 0
    final = facts.get("final", {})
    print(f"[domainssl] run {run_dir}: {final.get('global_step')} steps, final loss {_number(final.get('loss'))}, "
          f"embedding std {_number(final.get('emb_std'))}")
    skips = final.get("read_skips") or {}
    if skips.get("count"):
        print(f"[domainssl] {skips['count']} patch(es) of unreadable images were replaced by "
              f"patches of other images (first: {'; '.join(skips['examples'])}); see {run_dir}/run.json")
    print(f"[domainssl] next: domainssl export {run_dir} --out {run_dir}/encoder")
    return 0


def _number(value) -> str:
    """4 significant digits for a metric the run may not have recorded (None: 'n/a')."""
    return "n/a" if value is None else f"{value:.4g}"
