"""Run a pretraining recipe: data -> views -> encoder + method -> Lightning Trainer -> run directory.

RUN_DIR layout:
    config.yaml          the resolved recipe (overrides applied)
    run.json             facts for the encoder card: channels, spacing, normalisation, data summary,
                         final metrics (written at the start and updated at the end)
    manifest.jsonl, stats.json   the archive scan and channel statistics (reused on --resume)
    checkpoints/         last.ckpt (resumable) and step checkpoints
    tensorboard/, csv/   logs (TensorBoard and CSV)
    pictures/            curves.png, views.png, mae_reconstructions.png
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..jsonable import jsonable
from .lightning_notices import quiet_lightning
from ..ranks import is_rank_zero, quiet_unless_rank_zero, rank_work_dir, started_by_lightning
from .recipe import RecipeError, dump_recipe, is_run_config

CKPT_DIR = "checkpoints"
LAST_CKPT = "last.ckpt"
RUN_FACTS = "run.json"


def _line_progress():
    """A Lightning callback printing one log line every `every` steps (readable without a terminal)."""
    import lightning as L

    class LineProgress(L.Callback):
        def __init__(self, every: int, cap_logging: bool = False):
            self.every = max(1, int(every))
            self.cap_logging = cap_logging  # the run chose trainer.log_every_n_steps, not the recipe
            self.start = None
            self.total = None
            self.said = None  # the last step reported (micro-batches of one step end alike)

        def on_train_start(self, trainer, pl_module):
            self.start = time.monotonic()
            total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
            if total is None:  # a run given in epochs
                estimate = trainer.estimated_stepping_batches
                total = int(estimate) if estimate != float("inf") else None
            if self.cap_logging and total and 0 < total < trainer.log_every_n_steps:
                # A run of fewer steps than the logging interval would log no metrics (and draw
                # no curves); a step-limited run is capped when the Trainer is built, one given
                # in epochs only now that its loader's length is known. Every rank alike.
                trainer.log_every_n_steps = total
            if not trainer.is_global_zero:
                self.every = None  # one rank reports the run
                return
            self.total = total
            print(f"[domainssl] pretraining {pl_module.method_name}: {total or '?'} steps", flush=True)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            step = trainer.global_step
            if self.every is None or step == self.said or (step % self.every and step != self.total):
                return
            self.said = step
            m = trainer.callback_metrics
            parts = [f"step {step}" + (f"/{self.total}" if self.total else "")]
            for key in ("train/loss", "train/emb_std", "val/knn_acc"):
                if key in m:
                    parts.append(f"{key.split('/')[-1]} {float(m[key]):.4f}")
            elapsed = time.monotonic() - (self.start or time.monotonic())
            parts.append(f"{elapsed:.0f}s")
            print("[domainssl] " + "  ".join(parts), flush=True)

    return LineProgress


def _monitor_loader(monitor: dict, facts: dict, batch_size: int):
    """A validation loader of labeled images for the kNN monitor, prepared as transfer will prepare
    them (the run's channels, input size and normalisation), or None when no labels are given.

    monitor: {"labels": CSV, folder or shared:NAME, "split": "train" (default) | "test" | "all",
    "max_items": 2000, "channel_map": as probe's --channel-map (ENCODER=DATA names or indices)}.
    A labeled set that does not fit the run (channels, dims, unreadable files) is a RecipeError.
    """
    if not monitor or not monitor.get("labels"):
        return None
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from ..data.dataset import loader_generator

    from ..transfer.card import CardError, CardMismatchError
    from ..transfer.labeled import LabeledDataError
    from ..transfer.labeled_sets import load_labels
    from ..transfer.preprocess import make_input_spec, prepare_inputs

    card = {"channel_names": facts["channel_names"], "spatial_dims": facts["spatial_dims"],
            "input_size": facts["input_size"], "spacing": facts["spacing"], "units": facts["units"],
            "normalization": facts["normalization"]}
    try:
        labeled = load_labels(monitor["labels"])
        split = monitor.get("split", "train")
        idx = np.arange(len(labeled)) if split == "all" else labeled.indices(split)
        idx = idx[: int(monitor.get("max_items", 2000))]
        spec = make_input_spec(card, labeled, channel_map=monitor.get("channel_map"), check_values=False)
        images = prepare_inputs(labeled, spec, indices=idx, progress=False)
    except (LabeledDataError, CardError, CardMismatchError) as exc:
        raise RecipeError(f"monitor.labels {monitor['labels']}: {exc} (the kNN monitor's channel map "
                          f"is monitor.channel_map)") from exc
    labels = torch.as_tensor(labeled.labels[idx], dtype=torch.long)
    items = [{"image": images[i], "label": labels[i], "index": torch.tensor(i)} for i in range(len(idx))]
    return DataLoader(items, batch_size=batch_size, shuffle=False, collate_fn=_stack_items,
                      generator=loader_generator(0))


def _stack_items(items: list[dict]) -> dict:
    import torch

    return {key: torch.stack([x[key] for x in items]) for key in items[0]}


def sharded_over_ranks(loader):
    """`loader` with each rank reading its own share (a DistributedSampler, no shuffling) once
    torch.distributed runs with several processes; `loader` itself otherwise. The run turns
    Lightning's automatic sharding off for its training sampler, so the kNN monitor's loader is
    sharded here: unsharded, every rank would score every image and the gathered reference set
    would hold each image once per rank (its own copy as nearest neighbour)."""
    import torch.distributed as dist
    from torch.utils.data import DataLoader, DistributedSampler

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return loader
    return DataLoader(loader.dataset, batch_size=loader.batch_size, collate_fn=loader.collate_fn,
                      generator=loader.generator,
                      sampler=DistributedSampler(loader.dataset, shuffle=False))


def _with_validation(dm, val_loader):
    """`dm` with a labeled validation loader for the kNN monitor (training data unchanged)."""
    import lightning as L

    class WithValidation(L.LightningDataModule):
        def __init__(self):
            super().__init__()
            self.inner = dm

        def setup(self, stage=None):
            self.inner.trainer = self.trainer
            self.inner.setup(stage)

        def train_dataloader(self):
            self.inner.trainer = self.trainer  # rank / world size for the inner sampler
            return self.inner.train_dataloader()

        def val_dataloader(self):
            return sharded_over_ranks(val_loader)

    return WithValidation()


def _view_facts(recipe_views: dict, dm) -> tuple[dict, dict]:
    """(views kwargs for build_*_from_recipe, run facts) from the recipe's views block."""
    views = dict(recipe_views)
    gpu = bool(views.pop("gpu", False))
    dims = int(views.pop("spatial_dims", dm.spatial_dims))
    return views, {"gpu": gpu, "spatial_dims": dims}


def build_pretraining(recipe: dict[str, Any], run_dir, resume: bool = False, datamodule=None):
    """Build (datamodule, method, trainer, facts) for a resolved recipe; nothing is trained yet.

    The data module is set up here (scan, stats) because the views, the encoder's channel count
    and the card need its channel names and statistics. `datamodule` replaces the recipe's
    `data:` section (e.g. an `ArrayDataModule` of images in memory).
    """
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from ..data.datamodule import PatchDataModule
    from ..methods import build_method
    from ..models import build_encoder
    from ..transforms import (build_batch_views_from_recipe, build_views_from_recipe, collate_patches,
                              collate_views)

    import torch

    run_dir = Path(run_dir)
    # Normalised views hold many values near 0; denormal floats make log/exp/conv on CPU several
    # times slower for no accuracy benefit (GPU kernels flush them anyway).
    torch.set_flush_denormal(True)
    L.seed_everything(int(recipe.get("seed", 0)), workers=True, verbose=False)
    data = dict(recipe.get("data") or {})
    data.setdefault("seed", int(recipe.get("seed", 0)))
    if isinstance(data.get("patch_size"), (int, float)):  # one value: the same on every spatial axis
        data["patch_size"] = [data["patch_size"]]
    # Resume: the same patches and normalisation. The other ranks of Lightning's launcher: rank 0
    # built them moments ago (see train.ranks).
    if resume or started_by_lightning():
        if not data.get("manifest") and (run_dir / "manifest.jsonl").is_file():
            data["manifest"] = str(run_dir / "manifest.jsonl")
        if not data.get("stats") and (run_dir / "stats.json").is_file():
            data["stats"] = str(run_dir / "stats.json")
    work_dir = run_dir if is_rank_zero() else rank_work_dir(run_dir)
    if not (data.get("manifest") and data.get("stats")):
        work_dir.mkdir(parents=True, exist_ok=True)
    if datamodule is not None:
        dm = datamodule
    else:
        try:
            dm = PatchDataModule(work_dir=str(work_dir), **data)
        except TypeError as exc:
            raise RecipeError(f"data: {exc}; see `domainssl.data.datamodule.PatchDataModule` for the keys") from exc
    with quiet_unless_rank_zero():  # rank 0 reports the scan and the data warnings once
        dm.setup("fit")

    views_kw, view_facts = _view_facts(recipe["views"], dm)
    patch = list(dm.patch_size)
    if view_facts["spatial_dims"] == 3 and dm.spatial_dims == 3 and len(patch) == 2:
        # two values on 3D data mean one z plane (for 2D views of slices); 3D views of it would
        # stretch a single plane through the whole volume
        raise RecipeError(f"data.patch_size {patch} has 2 values, but the data and the views are 3D: "
                          f"give 3 values (z, y, x), e.g. --data.patch_size [16,{patch[0]},{patch[1]}]")
    seed = int(recipe.get("seed", 0))
    common = dict(spatial_dims=view_facts["spatial_dims"], channel_names=dm.channel_names, stats=dm.stats,
                  seed=seed)
    if view_facts["gpu"]:
        generator = build_batch_views_from_recipe(views_kw, **common)
        dm.collate_fn = collate_patches
        batch_views = generator
    else:
        generator = build_views_from_recipe(views_kw, **common)
        dm.transform = generator  # reaches the dataset setup built (the views need its stats)
        dm.collate_fn = collate_views
        batch_views = None
    plan = generator.plan
    dims = view_facts["spatial_dims"]
    input_size = [int(s) for s in plan.config.global_view.sizes(dims)]
    enc_channels = plan.output_channel_names(dm.spatial_dims)

    model = dict(recipe["model"])
    arch = model.pop("arch")
    try:
        encoder = build_encoder(arch, in_chans=len(enc_channels), spatial_dims=dims, input_size=input_size,
                                channel_names=enc_channels, **model)
    except (TypeError, ValueError) as exc:
        unexpected = re.search(r"unexpected keyword argument '([^']+)'", str(exc))
        if isinstance(exc, TypeError) and unexpected:
            key = unexpected.group(1)
            raise RecipeError(f"model.{key} is not an argument of the {arch!r} encoder: a misspelt key, or "
                              f"one of another architecture; correct or remove it (model: {sorted(model)})") from exc
        raise RecipeError(f"model: {exc}") from exc

    trainer_cfg = dict(recipe["trainer"])
    method_cfg = dict(recipe["method"])
    name = method_cfg.pop("name")
    if trainer_cfg.get("max_steps") and trainer_cfg["max_steps"] > 0:
        method_cfg.setdefault("max_steps", int(trainer_cfg["max_steps"]))
    try:
        method = build_method(name, encoder, batch_views=batch_views, **method_cfg)
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"method: {exc}") from exc

    norm = asdict(plan.config.normalise)
    norm["stats"] = dm.stats
    spacing, units = dm.spacing, dm.units
    view_spacing = _view_spacing(dm, plan.config.global_view, dims, input_size)
    facts = {
        "recipe_name": recipe.get("name"),
        "channel_names": dm.channel_names,
        "encoder_channel_names": enc_channels,
        "spatial_dims": dims,
        "input_size": input_size,
        "spacing": view_spacing if view_spacing is not None else spacing[-dims:],
        "data_spacing": spacing,
        "units": units[-dims:],
        "normalization": norm,
        "views": {"preset": recipe["views"].get("preset"), "kind": recipe["views"].get("kind", "two_view"),
                  "n_views": plan.n_views, "gpu": view_facts["gpu"]},
        "data": dm.summary(),
        "method": name,
        "arch": arch,
    }
    facts = jsonable(facts)

    _cpu_threads(trainer_cfg, int(getattr(dm, "num_workers", 0) or 0))
    monitor = dict(recipe.get("monitor") or {})
    val_loader = _monitor_loader(monitor, facts, int(getattr(dm, "batch_size", 64)))
    if val_loader is not None:
        # A kNN score on labeled images every N steps: collapse shows up here while the loss falls.
        trainer_cfg.setdefault("val_check_interval", int(monitor.get("every_n_steps", 100)))
        trainer_cfg.setdefault("check_val_every_n_epoch", None)
        dm = _with_validation(dm, val_loader)
        facts["monitor"] = {"labels": str(monitor["labels"]), "items": len(val_loader.dataset),
                            "every_n_steps": trainer_cfg["val_check_interval"]}
    else:
        trainer_cfg.setdefault("limit_val_batches", 0)

    chosen_log_interval = "log_every_n_steps" not in trainer_cfg  # else the recipe's, as given
    every = int((recipe.get("checkpoint") or {}).get("every_n_steps") or 500)
    log_every = int((recipe.get("log") or {}).get("every_n_steps") or 10)
    callbacks = [ModelCheckpoint(dirpath=str(run_dir / CKPT_DIR), filename="step{step:07d}", auto_insert_metric_name=False,
                                 every_n_train_steps=every, save_last=True, save_top_k=-1,
                                 enable_version_counter=False),  # a resumed run's last.ckpt stays last.ckpt
                 _line_progress()(log_every, cap_logging=chosen_log_interval)]
    if resume and is_rank_zero():
        keep_csv_history(run_dir / "csv")
    loggers = [TensorBoardLogger(str(run_dir), name="tensorboard", version=""),
               CSVLogger(str(run_dir), name="csv", version="")]
    steps = trainer_cfg.get("max_steps") or 0
    # a run shorter than the logging interval would write no metrics.csv (and no curves)
    trainer_cfg.setdefault("log_every_n_steps", min(log_every, steps) if steps > 0 else log_every)
    trainer_cfg.setdefault("enable_progress_bar", sys.stderr.isatty())
    trainer_cfg.setdefault("enable_model_summary", False)
    trainer_cfg.setdefault("num_sanity_val_steps", 0)
    # PatchDataModule's EpochSampler shards by rank itself (and resumes mid-epoch); Lightning's
    # DistributedSampler wrapper on top would shard twice.
    trainer_cfg.setdefault("use_distributed_sampler", False)
    try:
        trainer = L.Trainer(default_root_dir=str(run_dir), logger=loggers, callbacks=callbacks, **trainer_cfg)
        if "sync_batchnorm" not in trainer_cfg and wants_sync_batchnorm(trainer, method):
            # What Lightning's sync_batchnorm=True does at fit, without building a second Trainer
            # (state_dict keys stay those of BatchNorm, so exports load anywhere).
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)
    except TypeError as exc:
        raise RecipeError(f"trainer: {exc}; see lightning.Trainer for the keys") from exc

    return dm, method, trainer, facts


def keep_csv_history(csv_dir: Path) -> Path | None:
    """Before a resumed run logs: move csv/metrics.csv to csv/metrics.partN.csv (N = 1, 2, ...),
    since Lightning's CSVLogger starts metrics.csv afresh and the curves would lose every step
    before the resume. `pictures.read_metrics` reads the parts and metrics.csv together.
    Returns the new part's path, or None when there was no log."""
    current = Path(csv_dir) / "metrics.csv"
    if not current.is_file():
        return None
    n = 1
    while (current.parent / f"metrics.part{n}.csv").exists():
        n += 1
    return current.rename(current.parent / f"metrics.part{n}.csv")


def wants_sync_batchnorm(trainer, method) -> bool:
    """Batch statistics over all GPUs (SyncBatchNorm) when a run spans several: the contrastive
    and BYOL heads normalise over the batch, and their published results use the global batch's
    statistics (per-GPU statistics of a small per-GPU batch also leak which samples share a GPU).
    Not on CPU, where torch has no SyncBatchNorm kernel. A recipe's `trainer.sync_batchnorm`
    overrides this."""
    import torch

    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in method.modules())
    return has_bn and trainer.world_size > 1 and trainer.strategy.root_device.type == "cuda"


def _cpu_threads(trainer_cfg: dict, num_workers: int) -> None:
    """On CPU, give the training process the cores the data workers leave free.

    Intra-op threads that outnumber free cores spin at every barrier while a data worker holds a
    core: on 2 cores with one worker, 2 torch threads made a step 10x slower than 1 (measured).
    """
    import os

    import torch

    accel = str(trainer_cfg.get("accelerator", "auto"))
    if accel == "cpu" or (accel == "auto" and not torch.cuda.is_available()):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, min(torch.get_num_threads(), cores - num_workers)))


def _view_spacing(dm, global_view, dims: int, input_size) -> list[float] | None:
    """Physical spacing of a global view that covers the whole patch (the encoder's input scale)."""
    if global_view.target_spacing is not None:
        ts = list(global_view.target_spacing)
        return [float(v) for v in (ts * dims if len(ts) == 1 else ts)]
    if dm.spatial_dims < dims:
        return None
    patch = list(dm.patch_size)
    patch = patch * dm.spatial_dims if len(patch) == 1 else patch
    # 2D views of 3D patches (slices; adjacent planes become channels) span the patch's last
    # two axes, (Y, X)
    patch, spacing = patch[-dims:], list(dm.spacing)[-dims:]
    extent = [p if dm.patch_unit != "px" else p * s for p, s in zip(patch, spacing)]
    return [float(e) / float(n) for e, n in zip(extent, input_size)]


def _first_batch(dm, method):
    """One training batch as the method sees it (views made on the device if the recipe says so)."""
    loader = dm.train_dataloader()
    batch = next(iter(loader))
    if "views" not in batch and method.batch_views is not None:
        batch = {**batch, **method.batch_views.to("cpu")({"image": batch["image"]})}
    return batch


def write_pictures(run_dir, dm, method, recipe: dict) -> list[Path]:
    """curves.png (loss, embedding std), views.png and, for MAE, mae_reconstructions.png."""
    from .pictures import mae_reconstructions, plot_curves, views_sheet

    run_dir = Path(run_dir)
    pics = run_dir / "pictures"
    pics.mkdir(exist_ok=True)
    want = recipe.get("pictures") or {}
    channel_names = getattr(getattr(dm, "inner", dm), "channel_names", None)  # inner: with a kNN monitor
    out = []
    metrics = run_dir / "csv"
    if want.get("curves", True) and (metrics / "metrics.csv").is_file():
        p = plot_curves(metrics, pics / "curves.png")
        if p:
            out.append(p)
    if want.get("views", True) or want.get("reconstructions", True):
        batch = _first_batch(dm, method)
        views = batch["views"]
        if want.get("views", True):
            out.append(views_sheet(views, pics / "views.png",
                                   title=f"augmented views ({recipe['views'].get('preset')}, "
                                         f"{recipe['views'].get('kind', 'two_view')})",
                                   channel_names=channel_names))
        if want.get("reconstructions", True) and getattr(method, "method_name", "") == "mae":
            out.append(mae_reconstructions(method.cpu(), views[0], pics / "mae_reconstructions.png",
                                           channel_names=channel_names))
    return out


class RunStopped(RuntimeError):
    """The run was stopped from outside (SIGTERM) before it reached its end."""

    exit_code = 143  # 128 + SIGTERM, what a shell reports for a terminated process


def _stopped_message(run_dir: Path, step: int) -> str:
    if not (run_dir / CKPT_DIR / LAST_CKPT).is_file():
        return (f"stopped by SIGTERM at step {step}, before its first checkpoint: nothing to resume; "
                f"run the same command again to start afresh (it replaces {run_dir})")
    saved = sorted((run_dir / CKPT_DIR).glob("step*.ckpt"))
    where = f" (its last step checkpoint is {saved[-1].name})" if saved else ""
    return (f"stopped by SIGTERM at step {step}{where}: continue with domainssl pretrain "
            f"--resume {run_dir}")


RUNNING = ".running"  # {"pid", "host"} of the process training in a run folder


def _training_elsewhere(run_dir: Path) -> str | None:
    """Who holds `run_dir`'s RUNNING file, if that process may still be alive (always assumed
    for another host), else None."""
    import os
    import socket

    try:
        holder = json.loads((run_dir / RUNNING).read_text())
        pid, host = int(holder["pid"]), str(holder["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host != socket.gethostname():
        return f"process {pid} on {host}"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return f"process {pid}"


class _Running:
    """RUN/.running while this process trains there (rank 0): a second command into the same
    folder must not take a live run that has no checkpoint yet for an abandoned one."""

    def __init__(self, run_dir: Path, writer: bool) -> None:
        self.path = run_dir / RUNNING if writer else None

    def __enter__(self):
        if self.path is not None:
            import os
            import socket

            self.path.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        return self

    def __exit__(self, *exc) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _clear_unfinished_run(run_dir: Path, recipe: dict[str, Any]) -> None:
    """Remove what a run that never wrote a checkpoint left in `run_dir` (only this module's own
    outputs, see the layout above, and not a manifest or statistics file the recipe names), so a
    new run does not mix its logs with the old ones. Refused while that run may be training."""
    import shutil

    who = _training_elsewhere(run_dir)
    if who:
        raise RecipeError(f"{run_dir}: a run is training there ({who}; no checkpoint yet): give "
                          f"another --run-dir, or remove {run_dir / RUNNING} if that process is gone")
    print(f"[domainssl] {run_dir} holds a run that stopped before its first checkpoint: "
          f"replacing it", flush=True)
    data = recipe.get("data") or {}
    named = {Path(str(data[k])).resolve() for k in ("manifest", "stats") if data.get(k)}
    for name in (RUN_FACTS, "config.yaml", "manifest.jsonl", "stats.json"):
        if (run_dir / name).resolve() not in named:
            (run_dir / name).unlink(missing_ok=True)
    for name in (CKPT_DIR, "tensorboard", "csv", "pictures"):
        shutil.rmtree(run_dir / name, ignore_errors=True)


def _refuse_finished(ckpt: Path, recipe: dict[str, Any]) -> None:
    """A resume that has nothing left to train is an error that says how to train further
    (Lightning would start and stop at once, and the pictures found no batch)."""
    import torch

    steps = (recipe.get("trainer") or {}).get("max_steps")
    if not steps or steps <= 0:
        return
    done = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True).get("global_step")
    if done is not None and int(done) >= int(steps):
        raise RecipeError(f"{ckpt.parent.parent} already trained {done} steps (max_steps {steps}): "
                          f"pass --trainer.max_steps N with N > {done} to train further")


def _check_accelerator(recipe: dict[str, Any]) -> None:
    """A GPU asked for where none is visible: said before the archive is scanned (Lightning
    said only "No supported gpu backend found!", after the scan and statistics)."""
    import torch

    accel = (recipe.get("trainer") or {}).get("accelerator", "auto")
    if not isinstance(accel, str):
        return  # an Accelerator object (the Python API): Lightning checks it
    accel = accel.lower()
    if accel in ("gpu", "cuda") and not torch.cuda.is_available():
        raise RecipeError(f"trainer.accelerator {accel!r}: no GPU is visible here "
                          f"(torch.cuda.is_available() is False); use --trainer.accelerator cpu "
                          f"(or auto, which takes a GPU where there is one)")
    if accel == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise RecipeError("trainer.accelerator 'mps': no Apple GPU is usable here; use "
                          "--trainer.accelerator cpu (or auto)")


def _holds_a_run(run_dir: Path) -> bool:
    """Whether `run_dir` is a run folder this module wrote: its run facts, a checkpoint, a
    training process's RUNNING file, or a config.yaml that `dump_recipe` wrote (a run that
    stopped before its run facts, e.g. in the scan)."""
    if any((run_dir / name).is_file() for name in (RUN_FACTS, RUNNING, f"{CKPT_DIR}/{LAST_CKPT}")):
        return True
    return is_run_config(run_dir / "config.yaml")


def _refuse_foreign_folder(run_dir: Path, recipe: dict[str, Any]) -> None:
    """A --run-dir that holds files but no run: a new run would overwrite its config.yaml,
    stats.json, ... without a word. Files the recipe names as data.manifest / data.stats (a scan
    written there beforehand) and other ranks' `ranks/` folders do not count."""
    if not run_dir.is_dir() or _holds_a_run(run_dir):
        return
    data = recipe.get("data") or {}
    named = {Path(str(data[k])).resolve() for k in ("manifest", "stats") if data.get(k)}
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in run_dir.iterdir()
                   if p.name != "ranks" and p.resolve() not in named)
    if not found:
        return
    shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    raise RecipeError(f"{run_dir} is not empty and holds no domainssl run (found {shown}); a run "
                      f"writes config.yaml, stats.json, checkpoints/ ... into its folder: give an "
                      f"empty or new --run-dir")


def run_pretraining(recipe: dict[str, Any], run_dir, resume: bool = False, datamodule=None) -> dict[str, Any]:
    """Train a recipe into `run_dir` (resuming from its last checkpoint when `resume`).

    `datamodule` replaces the recipe's data section (see `build_pretraining`).
    Returns the run facts (also written to RUN_DIR/run.json), including `final` metrics.
    """
    run_dir = Path(run_dir)
    _check_accelerator(recipe)
    if not resume and is_rank_zero():
        _refuse_foreign_folder(run_dir, recipe)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / CKPT_DIR / LAST_CKPT
    if resume and not ckpt.is_file():
        raise RecipeError(f"{run_dir}: nothing to resume ({ckpt} is missing)")
    # Two runs in one folder would mix their checkpoints and overwrite each other's logs. The
    # other ranks of this run may find rank 0's fresh run.json; a last.ckpt they cannot (rank 0
    # writes none before every rank has joined), so that is what they check.
    holds_run = (run_dir / RUN_FACTS).is_file() if is_rank_zero() else ckpt.is_file()
    if not resume and holds_run:
        if ckpt.is_file():
            raise RecipeError(f"{run_dir} already holds a run ({RUN_FACTS}): continue it with "
                              f"--resume {run_dir}, or give another --run-dir (or remove that "
                              f"folder) to start afresh")
        # It stopped before its first checkpoint (often a setup error whose message says what
        # to change): nothing to resume or lose, so the rerun with the fix replaces it.
        _clear_unfinished_run(run_dir, recipe)
    if resume:
        _refuse_finished(ckpt, recipe)
    writer = is_rank_zero()  # the other ranks of a multi-device run write nothing here
    with _Running(run_dir, writer):
        return _train(recipe, run_dir, resume, datamodule, ckpt, writer)


def _train(recipe: dict[str, Any], run_dir: Path, resume: bool, datamodule, ckpt: Path,
           writer: bool) -> dict[str, Any]:
    """The body of `run_pretraining` once the folder is checked: build, fit, save, report."""
    if writer:
        dump_recipe(recipe, run_dir / "config.yaml")
    with quiet_lightning():
        dm, method, trainer, facts = build_pretraining(recipe, run_dir, resume=resume, datamodule=datamodule)
        if writer:
            (run_dir / RUN_FACTS).write_text(json.dumps(facts, indent=2) + "\n")
        start = time.monotonic()
        try:
            trainer.fit(method, datamodule=dm, ckpt_path=str(ckpt) if resume else None, weights_only=True)
        except (SystemExit, RuntimeError) as exc:
            # A DataLoader worker that got the same SIGTERM (a job's whole process group is
            # signalled) surfaces as "worker ... is killed by signal: Terminated".
            if not (type(exc).__name__ == "SIGTERMException" or (
                    isinstance(exc, RuntimeError) and "killed by signal: Terminated" in str(exc))):
                raise
            # Lightning ends a fit on SIGTERM (a scheduler's preemption, `timeout`) with a
            # SystemExit without a code: exit status 0, and a `pretrain && export` chain would
            # export a half-trained encoder. Say where it stopped and how to go on.
            raise RunStopped(_stopped_message(run_dir, int(trainer.global_step))) from None
        # Full state (optimizer, loops) so runs resume; every rank takes part, rank 0 writes.
        trainer.save_checkpoint(str(ckpt), weights_only=False)
    card_facts = method.card_facts()
    facts["final"] = jsonable({"global_step": int(trainer.global_step), "train_seconds": time.monotonic() - start,
                                "loss": card_facts.get("last_loss"), "emb_std": card_facts.get("emb_std"),
                                "knn_acc": card_facts.get("knn_acc"),
                                "collapse_warnings": card_facts.get("collapse_warnings"),
                                "skipped_steps": card_facts.get("skipped_steps"),
                                "read_skips": card_facts.get("read_skips")})
    if not writer:
        return facts
    (run_dir / RUN_FACTS).write_text(json.dumps(facts, indent=2) + "\n")
    facts["pictures"] = [str(p) for p in write_pictures(run_dir, dm, method, recipe)]
    (run_dir / RUN_FACTS).write_text(json.dumps(facts, indent=2) + "\n")
    return facts
