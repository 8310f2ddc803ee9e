"""Where a training step's device time goes, by kind of kernel: matrix multiplies, attention,
compiler-fused kernels, normalisation/element-wise work, the optimiser, the rest.

MFU says how far a step is from the device's peak; this says why: a step at 0.25 MFU whose
matrix multiplies take 55 % of its time loses the rest to memory-bound kernels that fusion can
remove, while one whose multiplies take 90 % is limited by their shapes. Used by
`train_step.py --profile N` (the plain loop's step) on a GPU; on a CPU it classifies aten ops.
"""

from __future__ import annotations

import re
from collections import Counter

import torch

# (kind, pattern on the kernel or op name), first match wins; CUDA kernel names (cuBLAS
# "nvjet"/"sm90_xmma"/cutlass GEMMs, flash/cuDNN attention, inductor's "triton_" kernels) and
# CPU aten op names.
KINDS = (
    ("optimizer / EMA / clipping", re.compile(r"adam|multi_tensor_apply|_foreach_|fused_adam", re.I)),
    ("attention", re.compile(r"flash|fmha|attention|sdpa|scaled_dot_product", re.I)),
    ("fused (triton)", re.compile(r"^triton_(?!tem_)", re.I)),  # inductor's fused kernels
    ("convolution", re.compile(r"conv|fprop|dgrad|wgrad|winograd", re.I)),
    ("gemm", re.compile(r"gemm|cutlass|xmma|nvjet|wgmma|cublas|^triton_tem_|aten::(mm|addmm|bmm|matmul|linear|baddbmm)\b", re.I)),
    ("norm / element-wise", re.compile(
        r"norm|elementwise|vectorized|reduce|softmax|gelu|relu|silu|add|mul|copy|cat|index|gather|"
        r"scatter|where|fill|sum|mean|pow|sqrt|div|sub|exp|log|clamp|transpose|permute|contiguous", re.I)),
)


def kernel_kind(name: str) -> str:
    """The kind of one kernel or op by its name (see KINDS); 'other' when none matches."""
    for kind, pattern in KINDS:
        if pattern.search(name):
            return kind
    return "other"


def device_time_breakdown(step_fn, steps: int, device: torch.device, top: int = 8) -> dict:
    """Profile `steps` calls of `step_fn` (after the caller's warm-up).

    Returns {"ms_per_step": device (CUDA) or CPU self time per step in ms, "shares": {kind:
    fraction of that time}, largest first, "top": [(kernel name, ms per step), ...] for the `top`
    most expensive kernels}. Self times only, so nothing is counted twice.
    """
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step_fn()
        if cuda:
            torch.cuda.synchronize(device)
    per_kernel: Counter = Counter()
    for event in prof.key_averages():
        t = event.self_device_time_total if cuda else event.self_cpu_time_total
        if t > 0:
            per_kernel[event.key] += t
    total = sum(per_kernel.values())
    if total == 0:
        return {"ms_per_step": 0.0, "shares": {}, "top": []}
    kinds: Counter = Counter()
    for name, t in per_kernel.items():
        kinds[kernel_kind(name)] += t
    return {"ms_per_step": total / steps / 1e3,
            "shares": {k: t / total for k, t in kinds.most_common()},
            "top": [(name[:80], t / steps / 1e3) for name, t in per_kernel.most_common(top)]}


def format_breakdown(breakdown: dict) -> str:
    """One line: 'device time 48.1 ms/step: gemm 52%, fused (triton) 20%, ...'."""
    shares = ", ".join(f"{k} {v:.0%}" for k, v in breakdown["shares"].items())
    return f"device time {breakdown['ms_per_step']:.3g} ms/step: {shares}"
