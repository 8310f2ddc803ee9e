"""Command-line arguments shared by the `domainssl pretrain` tests: the sentinel2_mae recipe
shrunk to a 1-block ViT on 16x16 patches, so a run of a few steps takes seconds on a CPU."""

from pathlib import Path

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "sentinel2_mae.yaml"

TINY_MAE = ["--data.patch_size", "[16,16]", "--data.patches_per_image", "1", "--data.channels", "null",
            "--views.global.size", "16", "--model.arch", "vit2d_tiny", "--model.embed_dim", "48",
            "--model.depth", "1", "--model.num_heads", "2", "--model.patch_size", "8",
            "--model.channel_groups", "null", "--method.decoder_dim", "32", "--method.decoder_depth", "1",
            "--method.decoder_heads", "2", "--method.warmup_steps", "0"]


def tiny_pretrain_args(root: str, run, steps: int) -> list[str]:
    """`pretrain` arguments for a tiny CPU run of `steps` steps on the archive at `root`."""
    return ["pretrain", "--config", str(RECIPE), "--run-dir", str(run), "--data.root", root,
            "--data.batch_size", "4", "--data.num_workers", "0", "--data.stats_patches", "8",
            "--trainer.max_steps", str(steps), "--trainer.accelerator", "cpu",
            "--checkpoint.every_n_steps", "2", "--log.every_n_steps", "1", *TINY_MAE]
