"""The step profiler that `benchmarks/train_step.py --profile` uses: kernel names sorted into
kinds as they appear on an H100/H200 and on a CPU, and shares of a real profiled step."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "step_profile.py"


@pytest.fixture(scope="module")
def sp():
    spec = importlib.util.spec_from_file_location("step_profile", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name,kind", [
    ("nvjet_tst_128x256_64x4_1x2_h_bz_coopA_TNT", "gemm"),
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64", "gemm"),
    ("triton_tem_fused_addmm_3", "gemm"),
    ("aten::addmm", "gemm"),
    ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128>>", "attention"),
    ("cudnn_generated_fort_native_sdpa_sm90_flash_fprop", "attention"),
    ("triton_per_fused_native_layer_norm_0", "fused (triton)"),
    ("triton_poi_fused_convolution_backward_7", "fused (triton)"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl>", "norm / element-wise"),
    ("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::BFloat16>", "norm / element-wise"),
    ("void at::native::multi_tensor_apply_kernel<FusedAdamMathFunctor<float, 4>>", "optimizer / EMA / clipping"),
    ("sm90_xmma_fprop_implicit_gemm_bf16_nhwc", "convolution"),
    ("aten::convolution_backward", "convolution"),
    ("Memcpy HtoD (Pageable -> Device)", "other"),
])
def test_kernel_names_sorted_into_kinds(sp, name, kind):
    assert sp.kernel_kind(name) == kind


def test_breakdown_of_a_matmul_heavy_step(sp):
    a = torch.randn(256, 256)
    w = torch.randn(256, 256, requires_grad=True)

    def step():
        (a @ w @ w @ w).relu().sum().backward()

    out = sp.device_time_breakdown(step, 3, torch.device("cpu"))
    assert out["ms_per_step"] > 0
    assert sum(out["shares"].values()) == pytest.approx(1.0)
    assert max(out["shares"], key=out["shares"].get) == "gemm"
    assert len(out["top"]) <= 8 and all(ms >= 0 for _, ms in out["top"])
    line = sp.format_breakdown(out)
    assert line.startswith("device time ") and "gemm" in line
