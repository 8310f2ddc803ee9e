"""Training-step speed: our Lightning step against a plain torch loop, same model, same batch.

For each method at the shapes of the reference table in DESIGN.md, in one run:
  - "plain":    a bare torch loop (bf16 autocast, fused AdamW, zero_grad/backward/step, the
                method's gradient clipping if it clips (DINO), EMA),
                calling the method's own `compute_loss` — the reference loop for this model;
  - "domainssl": the method's full Lightning training step (Trainer, bf16-mixed, schedulers,
                NaN guard, collapse monitor, gradient clipping where the method sets it);
  - with --peers, lightly 1.6's MAE and DINO as their examples run them, and MONAI's 3D
    MaskedAutoEncoderViT (bf16 first; if it fails, fp32/TF32, reported as such).
The batch is made once on the device (no data loading). Reported: images/s (samples/s; volumes
for 3D), ratio to the plain loop, peak device memory, FLOPs per step (fwd + bwd, counted with
torch.utils.flop_counter.FlopCounterMode), achieved TFLOP/s and MFU against --peak-tflops.

Needs only torch, timm, lightning and numpy (peers are optional imports).
  PYTHONPATH=. python benchmarks/train_step.py                      # GPU, reference shapes
  PYTHONPATH=. python benchmarks/train_step.py --tiny               # CPU, tiny models
  PYTHONPATH=. python benchmarks/train_step.py --methods mae,dino --compile --peers
  PYTHONPATH=. python benchmarks/train_step.py --methods mae --compile full   # one graph per loss
  PYTHONPATH=. python benchmarks/train_step.py --methods mae --compile --profile 3  # where time goes
With --monitors-off a third row per method runs the Lightning step with the NaN guard and the
collapse monitor off (they bring loss and embedding std to the host once per step): the price of
that one device sync.
Rows are printed and the JSON rewritten after every method, so a run cut short keeps its rows.
On a CPU shared with other jobs, OMP_NUM_THREADS=1 gives steadier --tiny figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Iterator

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domainssl.methods import build_method  # noqa: E402
from domainssl.methods.optim import fused_adamw_available  # noqa: E402
from domainssl.models import build_encoder  # noqa: E402

from step_profile import device_time_breakdown, format_breakdown  # noqa: E402

# Reference shapes (DESIGN.md). MoCo v3 and BYOL have no anchor row: they use SimCLR's shapes.
FULL_CASES = {
    "mae": dict(method="mae", arch="vit_base_patch16_224", in_chans=3, dims=2, size=(224, 224),
                batch=256, views=[(224, 224)], enc={},
                hp=dict(mask_ratio=0.75, decoder_dim=512, decoder_depth=8, decoder_heads=16),
                label="MAE ViT-B/16, 224², 75% mask, bs 256"),
    "mae3d": dict(method="mae", arch="vit3d_base", in_chans=1, dims=3, size=(96, 96, 96),
                  batch=64, views=[(96, 96, 96)], enc=dict(patch_size=16),
                  hp=dict(mask_ratio=0.75, decoder_dim=512, decoder_depth=8, decoder_heads=16),
                  label="MAE 3D ViT-B, 96³, 16³ patches, bs 64"),
    "dino": dict(method="dino", arch="vit_small_patch16_224", in_chans=3, dims=2, size=(224, 224),
                 batch=64, views=[(224, 224)] * 2 + [(96, 96)] * 10, enc={},
                 hp=dict(out_dim=65536, hidden_dim=2048, bottleneck_dim=256),
                 label="DINO ViT-S/16, 2×224² + 10×96², bs 64"),
    "simclr": dict(method="simclr", arch="resnet50", in_chans=3, dims=2, size=(224, 224),
                   batch=256, views=[(224, 224)] * 2, enc={}, hp={},
                   label="SimCLR ResNet-50, 2×224², bs 256"),
    "mocov3": dict(method="mocov3", arch="resnet50", in_chans=3, dims=2, size=(224, 224),
                   batch=256, views=[(224, 224)] * 2, enc={}, hp={},
                   label="MoCo v3 ResNet-50, 2×224², bs 256 (no anchor row)"),
    "byol": dict(method="byol", arch="resnet50", in_chans=3, dims=2, size=(224, 224),
                 batch=256, views=[(224, 224)] * 2, enc={}, hp={},
                 label="BYOL ResNet-50, 2×224², bs 256 (no anchor row)"),
}

_TINY_VIT = dict(patch_size=8, embed_dim=48, depth=2, num_heads=3)
TINY_CASES = {
    "mae": dict(method="mae", arch="vit_tiny_patch16_224", in_chans=3, dims=2, size=(64, 64),
                batch=16, views=[(64, 64)], enc=dict(depth=2),
                hp=dict(mask_ratio=0.75, decoder_dim=32, decoder_depth=1, decoder_heads=2),
                label="tiny MAE ViT-Ti/16 (2 blocks), 64²"),
    "mae3d": dict(method="mae", arch="vit3d_tiny", in_chans=1, dims=3, size=(16, 16, 16),
                  batch=8, views=[(16, 16, 16)], enc=_TINY_VIT,
                  hp=dict(mask_ratio=0.75, decoder_dim=36, decoder_depth=1, decoder_heads=2),
                  label="tiny MAE 3D ViT (2 blocks), 16³, 8³ patches"),
    "dino": dict(method="dino", arch="vit_tiny_patch16_224", in_chans=3, dims=2, size=(64, 64),
                 batch=16, views=[(64, 64)] * 2 + [(32, 32)] * 4, enc=dict(depth=2),
                 hp=dict(out_dim=1024, hidden_dim=64, bottleneck_dim=32),
                 label="tiny DINO ViT-Ti/16 (2 blocks), 2×64² + 4×32²"),
    "simclr": dict(method="simclr", arch="resnet18", in_chans=3, dims=2, size=(32, 32), batch=16,
                   views=[(32, 32)] * 2, enc={}, hp=dict(proj_hidden_dim=128, proj_dim=64),
                   label="tiny SimCLR ResNet-18 32²"),
    "mocov3": dict(method="mocov3", arch="resnet18", in_chans=3, dims=2, size=(32, 32), batch=16,
                   views=[(32, 32)] * 2, enc={},
                   hp=dict(proj_hidden_dim=128, proj_dim=64, pred_hidden_dim=128),
                   label="tiny MoCo v3 ResNet-18 32²"),
    "byol": dict(method="byol", arch="resnet18", in_chans=3, dims=2, size=(32, 32), batch=16,
                 views=[(32, 32)] * 2, enc={},
                 hp=dict(proj_hidden_dim=128, proj_dim=64, pred_hidden_dim=128),
                 label="tiny BYOL ResNet-18 32²"),
}


# ---------------------------------------------------------------------------- helpers
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype)


def make_batch(case: dict, device: torch.device, seed: int = 0) -> dict:
    """{"views": [(B, C, *S), ...]}, made once on the device."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    return {"views": [torch.randn(case["batch"], case["in_chans"], *shape, generator=g).to(device)
                      for shape in case["views"]]}


def build(case: dict, steps: int, compile_: bool | str, device: torch.device, **extra):
    torch.manual_seed(0)
    enc = build_encoder(case["arch"], case["in_chans"], case["dims"], case["size"], **case["enc"])
    method = build_method(case["method"], enc, lr=1e-4, max_steps=steps, warmup_steps=0,
                          compile=compile_, **case["hp"], **extra).to(device)
    method.prepare_layout()  # channels-last CNN weights on CUDA, as a Lightning run does
    return method


def count_flops(step_fn) -> int:
    """FLOPs of one call of step_fn (forward + backward), from FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step_fn()
    return int(counter.get_total_flops())


def time_loop(step_fn, steps: int, warmup: int, device: torch.device) -> float:
    """Seconds for `steps` calls of step_fn after `warmup` untimed calls."""
    for _ in range(warmup):
        step_fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step_fn()
    _sync(device)
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------- plain loop
def reference_adamw(params, device: torch.device) -> torch.optim.AdamW:
    """The optimiser of the plain loop and the peers: AdamW, fused where torch has it."""
    return torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05,
                             fused=fused_adamw_available(device) or None)


def plain_step_fn(method, batch: dict, device: torch.device, amp: torch.dtype | None):
    """A bare training step on the method's model: autocast, fused AdamW, gradient clipping
    where the method's recipe clips (DINO), EMA. No Lightning."""
    params = [p for p in method.parameters() if p.requires_grad]
    clip = method.hparams.grad_clip
    opt = reference_adamw(params, device)
    views = batch["views"]

    def step():
        with _autocast(device, amp):
            loss, _ = method.compute_loss(views)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        method.momentum_update()

    return step


# ---------------------------------------------------------------------------- lightning step
class _RepeatBatch:
    """The same on-device batch, n times: a data source with no loading cost."""

    def __init__(self, batch: dict, n: int) -> None:
        self.batch, self.n = batch, n

    def __iter__(self):
        for _ in range(self.n):
            yield self.batch

    def __len__(self) -> int:
        return self.n


def time_lightning(method, batch: dict, steps: int, warmup: int, precision: str,
                   device: torch.device) -> float:
    import lightning as L

    class Timer(L.Callback):
        t0 = t1 = None

        def on_train_batch_start(self, trainer, pl_module, b, batch_idx):
            if batch_idx == warmup:
                _sync(device)
                Timer.t0 = time.perf_counter()

        def on_train_end(self, trainer, pl_module):
            _sync(device)
            Timer.t1 = time.perf_counter()

    trainer = L.Trainer(accelerator=device.type, devices=1, precision=precision,
                        max_steps=warmup + steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, callbacks=[Timer()])
    trainer.fit(method, _RepeatBatch(batch, warmup + steps))
    return Timer.t1 - Timer.t0


def _monitor_facts(method) -> dict:
    """bf16 stability as the run saw it: skipped (non-finite) steps, last loss, embedding std."""
    facts = dict(skipped_steps=method.skipped_steps, last_loss=method.last_loss,
                 emb_std=method.collapse.last)
    facts["note"] = (f"monitors: {facts['skipped_steps']} non-finite steps skipped, last loss "
                     f"{facts['last_loss']:.4g}" if facts["last_loss"] is not None else "")
    return facts


# ---------------------------------------------------------------------------- peers
def peer_lightly_mae(case: dict, device: torch.device):
    """lightly's MAE (its example's structure) on the same timm ViT and decoder size."""
    import timm
    from lightly.models import utils
    from lightly.models.modules import MAEDecoderTIMM, MaskedVisionTransformerTIMM
    from torch import nn

    torch.manual_seed(0)
    vit = timm.create_model(case["arch"], pretrained=False, num_classes=0,
                            in_chans=case["in_chans"], img_size=case["size"], **case["enc"])
    hp = case["hp"]
    backbone = MaskedVisionTransformerTIMM(vit=vit)
    patch = vit.patch_embed.patch_size[0]
    decoder = MAEDecoderTIMM(num_patches=vit.patch_embed.num_patches, patch_size=patch,
                             in_chans=case["in_chans"], embed_dim=vit.embed_dim,
                             decoder_embed_dim=hp["decoder_dim"], decoder_depth=hp["decoder_depth"],
                             decoder_num_heads=hp["decoder_heads"])
    model = nn.ModuleList([backbone, decoder]).to(device)
    seq_len = backbone.sequence_length
    criterion = nn.MSELoss()

    def loss_fn(images):
        b = images.shape[0]
        idx_keep, idx_mask = utils.random_token_mask(size=(b, seq_len), mask_ratio=hp["mask_ratio"],
                                                     device=images.device)
        encoded = backbone.encode(images=images, idx_keep=idx_keep)
        x = decoder.embed(encoded)
        full = utils.repeat_token(decoder.mask_token, (b, seq_len))
        full = utils.set_at_index(full, idx_keep, x.type_as(full))
        pred = decoder.predict(utils.get_at_index(decoder.decode(full), idx_mask))
        target = utils.get_at_index(utils.patchify(images, patch), idx_mask - 1)
        return criterion(pred, target)

    return model, loss_fn, None, ""


def peer_lightly_dino(case: dict, device: torch.device):
    """lightly's DINO as its example runs it: one forward per crop, per-module momentum update."""
    import copy

    import timm
    from lightly.loss import DINOLoss
    from lightly.models.modules import DINOProjectionHead
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from torch import nn

    torch.manual_seed(0)
    hp = case["hp"]
    backbone = timm.create_model(case["arch"], pretrained=False, num_classes=0,
                                 in_chans=case["in_chans"], img_size=case["size"],
                                 dynamic_img_size=True, **case["enc"])
    head = DINOProjectionHead(backbone.num_features, hp["hidden_dim"], hp["bottleneck_dim"],
                              hp["out_dim"], freeze_last_layer=1)
    # A weight-normed head cannot be deep-copied: built anew, as lightly's example does.
    t_head = DINOProjectionHead(backbone.num_features, hp["hidden_dim"], hp["bottleneck_dim"],
                                hp["out_dim"])
    t_head.load_state_dict(head.state_dict())
    t_backbone = copy.deepcopy(backbone)
    deactivate_requires_grad(t_backbone)
    deactivate_requires_grad(t_head)
    model = nn.ModuleList([backbone, head, t_backbone, t_head]).to(device)
    criterion = DINOLoss(output_dim=hp["out_dim"], warmup_teacher_temp_epochs=0).to(device)

    def loss_fn(views):
        teacher_out = [t_head(t_backbone(v)) for v in views[:2]]
        student_out = [head(backbone(v)) for v in views]
        return criterion(teacher_out, student_out, epoch=0)

    def after_step():
        update_momentum(backbone, t_backbone, m=0.996)
        update_momentum(head, t_head, m=0.996)

    return model, loss_fn, after_step, "one forward per crop"


def peer_monai_mae3d(case: dict, device: torch.device):
    """MONAI's MaskedAutoEncoderViT (3D) with the same ViT-B encoder and patch size."""
    from monai.networks.nets import MaskedAutoEncoderViT

    from domainssl.models.patches import patchify

    torch.manual_seed(0)
    hp, p = case["hp"], case["enc"]["patch_size"]
    base = case["arch"].endswith("base")
    # MONAI's 3D sin-cos table needs a width divisible by 6 (512 is not): the widest multiple of
    # 6 * heads that fits our decoder width, so its decoder is at most as heavy as ours.
    dec_heads = hp["decoder_heads"] if hp["decoder_dim"] >= 6 * hp["decoder_heads"] else 1
    dec_dim = hp["decoder_dim"] // (6 * dec_heads) * (6 * dec_heads)
    model = MaskedAutoEncoderViT(
        in_channels=case["in_chans"], img_size=case["size"], patch_size=p,
        hidden_size=768 if base else case["enc"].get("embed_dim", 192),
        mlp_dim=3072 if base else 4 * case["enc"].get("embed_dim", 192),
        num_layers=12 if base else case["enc"].get("depth", 12),
        num_heads=12 if base else case["enc"].get("num_heads", 3),
        masking_ratio=hp["mask_ratio"], decoder_hidden_size=dec_dim, decoder_mlp_dim=4 * dec_dim,
        decoder_num_layers=hp["decoder_depth"], decoder_num_heads=dec_heads, spatial_dims=3,
        qkv_bias=True).to(device)

    def loss_fn(x):
        pred, mask = model(x)
        # Loss on masked patches; the token order of MONAI's output may differ from patchify's,
        # which changes nothing about speed.
        target = patchify(x, (p,) * 3)
        per_token = ((pred.float() - target.float()) ** 2).mean(-1)
        return (per_token * mask).sum() / mask.sum()

    note = f"decoder {dec_dim} wide (MONAI's 3D sin-cos needs a multiple of 6)"
    return model, loss_fn, None, note


PEERS = {"mae": [("lightly 1.6 MAE", peer_lightly_mae)],
         "dino": [("lightly 1.6 DINO (example)", peer_lightly_dino)],
         "mae3d": [("MONAI MaskedAutoEncoderViT", peer_monai_mae3d)]}


def run_peer(name, factory, case, batch, args, device, amp):
    """Time one peer; returns a result row or a row with the reason it could not run."""
    try:
        model, loss_fn, after_step, note = factory(case, device)
    except ImportError as e:
        return dict(impl=name, error=f"not installed ({e.name})")
    except Exception as e:  # a peer that cannot be built is a result, not a crash
        return dict(impl=name, error=f"cannot be built: {type(e).__name__}: {str(e)[:120]}")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = reference_adamw(params, device)
    views = batch["views"]
    arg = views if "DINO" in name else views[0]

    def make_step(dtype):
        def step():
            with _autocast(device, dtype):
                loss = loss_fn(arg)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if after_step is not None:
                after_step()
        return step

    dtype = amp
    try:
        make_step(dtype)()
    except RuntimeError as e:
        if dtype is None:
            return dict(impl=name, error=str(e).splitlines()[0][:160])
        note = (f"fails under bf16 autocast ({str(e).splitlines()[0][:90]}); fp32/TF32 instead"
                + (f"; {note}" if note else ""))
        opt.zero_grad(set_to_none=True)
        dtype = None
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
    step = make_step(dtype)
    flops = count_flops(step)
    _reset_memory(device)
    seconds = time_loop(step, args.steps, args.warmup, device)
    row = dict(impl=name, seconds=seconds, flops=flops, peak_gib=_peak_gib(device), note=note)
    del model, opt
    return row


# ---------------------------------------------------------------------------- main
def bench_case(key: str, case: dict, args, device: torch.device) -> Iterator[dict]:
    """Rows for one method, yielded as each finishes (a run cut short keeps the ones done)."""
    amp = torch.bfloat16 if args.precision.startswith("bf16") else None
    batch = make_batch(case, device)
    plain = None

    def finish(r: dict) -> dict:
        r.update(case=key, label=case["label"], batch=case["batch"])
        if "seconds" in r:
            r["images_per_s"] = case["batch"] * args.steps / r["seconds"]
            r["vs_plain"] = plain / r["seconds"]
            r["tflops"] = r["flops"] * args.steps / r["seconds"] / 1e12
            r["mfu"] = r["tflops"] / args.peak_tflops
        return r

    method = build(case, args.warmup + args.steps, args.compile, device)
    step = plain_step_fn(method, batch, device, amp)
    flops = count_flops(step)                   # counted before compiling
    if args.compile:
        method.configure_model()                # the same in-place compile Lightning runs
    _reset_memory(device)
    plain = time_loop(step, args.steps, args.warmup, device)
    row = dict(impl="plain torch loop", flops=flops, seconds=plain, peak_gib=_peak_gib(device))
    if args.profile:
        row["profile"] = device_time_breakdown(step, args.profile, device)
        row["note"] = format_breakdown(row["profile"])
    yield finish(row)
    del method, step

    variants = [("domainssl Lightning step", {})]
    if args.monitors_off:
        variants.append(("domainssl Lightning step, monitors off",
                         dict(nan_guard="off", collapse_threshold=0.0)))
    for impl, extra in variants:
        method = build(case, args.warmup + args.steps, args.compile, device, **extra)
        _reset_memory(device)
        seconds = time_lightning(method, batch, args.steps, args.warmup, args.precision, device)
        yield finish(dict(impl=impl, flops=flops, seconds=seconds, peak_gib=_peak_gib(device),
                          **(_monitor_facts(method) if not extra else {})))
        del method

    if args.peers:
        for name, factory in PEERS.get(key, []):
            _reset_memory(device)
            yield finish(run_peer(name, factory, case, batch, args, device, amp))


def print_table(rows: list[dict], header: bool = True) -> None:
    if header:
        print("| case | implementation | images/s | × plain | peak GiB | GFLOP/step | TFLOP/s | MFU |")
        print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['label']} | {r['impl']} | – | – | – | – | – | – |  ({r['error']})")
            continue
        mem = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "–"
        print(f"| {r['label']} | {r['impl']} | {r['images_per_s']:,.1f} | {r['vs_plain']:.2f} | "
              f"{mem} | {r['flops'] / 1e9:,.4g} | {r['tflops']:.3g} | {r['mfu']:.3g} |"
              + (f"  ({r['note']})" if r.get("note") else ""))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny models and shapes (CPU)")
    ap.add_argument("--methods", default=None,
                    help=f"comma-separated subset of {','.join(FULL_CASES)} (default: all)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 20; tiny 5)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps (default 5; tiny 2)")
    ap.add_argument("--compile", nargs="?", const="modules", default=False,
                    choices=["modules", "full"],
                    help="torch.compile the encoder and heads (modules, the default) or each "
                         "method's whole loss as one graph (full)")
    ap.add_argument("--monitors-off", action="store_true",
                    help="add a Lightning row with the NaN guard and collapse monitor off")
    ap.add_argument("--peers", action="store_true", help="also time lightly / MONAI if installed")
    ap.add_argument("--peak-tflops", type=float, default=790.0,
                    help="device peak for MFU (default 790: the dense bf16 rate DESIGN.md's "
                         "anchors use, measured on an H200; the datasheet says 989)")
    ap.add_argument("--precision", default=None,
                    help="Lightning precision (default bf16-mixed on CUDA, 32-true on CPU)")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="after timing, profile N plain-loop steps: device time by kernel kind "
                         "(GEMM, attention, fused, element-wise, optimiser) and the top kernels")
    args = ap.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    args.precision = args.precision or ("bf16-mixed" if device.type == "cuda" else "32-true")
    args.steps = args.steps or (5 if args.tiny else 20)
    args.warmup = args.warmup if args.warmup is not None else (2 if args.tiny else 5)
    cases = TINY_CASES if args.tiny else FULL_CASES
    keys = args.methods.split(",") if args.methods else list(cases)
    unknown = [k for k in keys if k not in cases]
    if unknown:
        ap.error(f"unknown methods {unknown}; choose from {list(cases)}")

    # Lightning's info lines (devices, tips, "fit stopped") once per row would fill the device
    # call's output tail; rank zero logs through its own loggers, which do not inherit this level.
    from domainssl.train.lightning_notices import RANK_ZERO_LOGGERS

    for name in ("lightning.pytorch", *RANK_ZERO_LOGGERS):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        # Fixed shapes: let cuDNN pick its fastest kernels, for every implementation alike
        # (Lightning's Trainer keeps the session's setting).
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; precision {args.precision}; "
          f"compile={args.compile}; steps {args.steps} after {args.warmup} warm-up; "
          f"MFU against peak {args.peak_tflops:g} TFLOP/s"
          + (" (a GPU figure: MFU means little on a CPU)" if device.type == "cpu" else ""))

    rows = []
    for key in keys:
        print(f"... {key}", file=sys.stderr, flush=True)
        for row in bench_case(key, cases[key], args, device):
            print_table([row], header=not rows)
            sys.stdout.flush()
            rows.append(row)
            if args.json:
                Path(args.json).write_text(json.dumps(dict(
                    device=name, precision=args.precision, compile=args.compile,
                    peak_tflops=args.peak_tflops, rows=rows), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
