"""Export the encoder of a pretraining run: checkpoint (weights_only) + run facts -> encoder dir.

The exported network is the one its method's paper evaluates: DINO's EMA teacher, the online
encoder of every other method; `card["method"]["exported"]` records which.
"""

from __future__ import annotations

import json
from pathlib import Path

from .card import CARD_FILE, README_FILE, WEIGHTS_FILE, CardError
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


def read_checkpoint(ckpt: Path) -> dict:
    """The checkpoint dict (torch.load, weights_only, memory-mapped); a file that is not a
    readable Lightning checkpoint raises `CardError` naming it and what to do."""
    import zipfile

    import torch

    todo = "pass a run directory or a .ckpt file from its checkpoints/ folder"
    # torch.save writes a zip archive; a truncated copy loses the zip's directory at the end.
    # Checked first because torch.load reports such files as OSError, IndexError or mmap errors.
    if not zipfile.is_zipfile(ckpt):
        raise CardError(f"{ckpt}: not a PyTorch checkpoint (not a complete zip archive, as torch.save writes "
                        f"them): the file is truncated (an interrupted save or copy) or another kind of file; "
                        f"{todo}")
    try:
        data = torch.load(str(ckpt), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - torch.load's error type depends on the damage
        detail = (str(exc).splitlines() or [""])[0][:200]
        raise CardError(f"{ckpt}: not a readable PyTorch checkpoint ({type(exc).__name__}: {detail}); "
                        f"{todo}") from exc
    if not isinstance(data, dict) or "state_dict" not in data:
        raise CardError(f"{ckpt}: a PyTorch file but not a pretraining checkpoint (no state_dict); {todo}")
    return data


EXPORT_FILES = (WEIGHTS_FILE, CARD_FILE, README_FILE)


def check_out_dir(out_dir) -> Path:
    """`out_dir` as a Path, refused (FileExistsError) when it, or a folder above it, is a file, or
    when it is a folder holding files of its own (not an earlier export, which is replaced):
    export writes README.md, which would replace a project's own."""
    out_dir = Path(out_dir)
    for path in (out_dir, *out_dir.parents):
        if path.exists() and not path.is_dir():
            raise FileExistsError(f"{path}: exists and is a file, but --out names the encoder directory to "
                                  "write (model.safetensors, encoder.json, README.md); choose a new folder")
    if out_dir.is_dir() and not (out_dir / CARD_FILE).is_file():
        found = sorted(p.name for p in out_dir.iterdir())
        if found:
            more = f" and {len(found) - 5} more" if len(found) > 5 else ""
            raise FileExistsError(f"{out_dir}: holds {', '.join(found[:5])}{more} and is not an encoder "
                                  f"directory; export writes {', '.join(EXPORT_FILES)} there (README.md would "
                                  "be replaced): choose a new or empty folder for --out")
    return out_dir


def exported_network(method) -> tuple[object, str]:
    """(encoder module, description) to export: DINO's EMA teacher, as the DINO paper evaluates
    it (the student is what is trained, the teacher what is kept); the online encoder otherwise
    (BYOL and MoCo v3 evaluate it; SimCLR and MAE have no other)."""
    teacher = getattr(method, "teacher_encoder", None)
    if teacher is not None:
        return teacher, "teacher (EMA)"
    return method.encoder, "online"


def export_run(run_or_ckpt, out_dir) -> Path:
    """Write ENCODER_DIR (model.safetensors, encoder.json, README.md) from a run or checkpoint."""
    from ..methods import from_checkpoint

    ckpt, run_dir = locate(run_or_ckpt)
    out_dir = check_out_dir(out_dir)
    facts = json.loads((run_dir / RUN_FACTS).read_text())
    # Read it once here first: a broken file is named before from_checkpoint fails inside torch.
    checkpoint = read_checkpoint(ckpt)
    method = from_checkpoint(ckpt)  # torch.load(weights_only=True), strict key check
    cf = method.card_facts()
    # The method outside a Trainer has no step; the checkpoint records it.
    step = checkpoint.get("global_step")
    if step is not None:
        cf["global_step"] = int(step)
    hp = dict(cf.get("hparams") or {})
    method_info = {"name": cf.get("method"), **{k: hp[k] for k in sorted(hp) if k not in ("batch_views",)},
                   **(cf.get("method_facts") or {})}
    encoder, method_info["exported"] = exported_network(method)
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
    card = make_card(encoder, channel_names=facts["channel_names"], spacing=facts.get("spacing"),
                     units=facts.get("units"), normalization=facts["normalization"], method=method_info,
                     data=data, metrics=metrics, input_size=facts.get("input_size"))
    return export_encoder(encoder.eval(), out_dir, card)
