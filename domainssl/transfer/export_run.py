"""Export the encoder of a pretraining run: checkpoint (weights_only) + run facts -> encoder dir."""

from __future__ import annotations

import json
from pathlib import Path

from .card import CardError
from .encoder_io import export_encoder, make_card
from ..train.pretraining import CKPT_DIR, LAST_CKPT, RUN_FACTS


def locate(run_or_ckpt) -> tuple[Path, Path]:
    """(checkpoint file, run directory) for a run directory or a checkpoint inside one."""
    path = Path(run_or_ckpt)
    if path.is_dir():
        ckpt = path / CKPT_DIR / LAST_CKPT
        if not ckpt.is_file():
            raise FileNotFoundError(f"{path}: no {CKPT_DIR}/{LAST_CKPT}; is this a `domainssl pretrain` run "
                                    "directory? Pass a .ckpt file to export another checkpoint")
        return ckpt, path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such run directory or checkpoint")
    for parent in (path.parent, path.parent.parent):
        if (parent / RUN_FACTS).is_file():
            return path, parent
    raise CardError(f"{path}: no {RUN_FACTS} beside it or in its run directory; the card needs the run's "
                    "channel names, spacing and normalisation, so export checkpoints from inside their run")


def export_run(run_or_ckpt, out_dir) -> Path:
    """Write ENCODER_DIR (model.safetensors, encoder.json, README.md) from a run or checkpoint."""
    from ..methods import from_checkpoint

    ckpt, run_dir = locate(run_or_ckpt)
    facts = json.loads((run_dir / RUN_FACTS).read_text())
    import torch

    method = from_checkpoint(ckpt)  # torch.load(weights_only=True), strict key check
    cf = method.card_facts()
    # The method outside a Trainer has no step; the checkpoint records it.
    step = torch.load(str(ckpt), map_location="cpu", weights_only=True, mmap=True).get("global_step")
    if step is not None:
        cf["global_step"] = int(step)
    hp = dict(cf.get("hparams") or {})
    method_info = {"name": cf.get("method"), **{k: hp[k] for k in sorted(hp) if k not in ("batch_views",)},
                   **(cf.get("method_facts") or {})}
    final = dict(facts.get("final") or {})
    metrics = {"global_step": cf.get("global_step") if cf.get("global_step") is not None else final.get("global_step"),
               "loss": cf.get("last_loss") if cf.get("last_loss") is not None else final.get("loss"),
               "emb_std": cf.get("emb_std") if cf.get("emb_std") is not None else final.get("emb_std"),
               "knn_acc": cf.get("knn_acc"), "collapse_warnings": cf.get("collapse_warnings"),
               "skipped_steps": cf.get("skipped_steps"),
               "read_skips": final.get("read_skips") or cf.get("read_skips"), "checkpoint": str(ckpt)}
    data = dict(facts.get("data") or {})
    data["views"] = facts.get("views")
    data["recipe"] = facts.get("recipe_name")
    card = make_card(method.encoder, channel_names=facts["channel_names"], spacing=facts.get("spacing"),
                     units=facts.get("units"), normalization=facts["normalization"], method=method_info,
                     data=data, metrics=metrics, input_size=facts.get("input_size"))
    return export_encoder(method.encoder.eval(), out_dir, card)
