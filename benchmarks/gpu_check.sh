#!/usr/bin/env bash
# Every GPU check in one run, for a lent H100/H200 (its own torch, no network), from the source tree:
#   bash benchmarks/gpu_check.sh            # writes logs and JSON to $OUT (or ./gpu_out)
# 1. the GPU batch view path (views/s; goal >= 5,000 2D and >= 2,500 3D views/s)
# 2. every SSL method's Lightning step vs the plain torch loop at the DESIGN.md shapes (images/s,
#    peak memory, MFU against 790 TFLOP/s; bf16), a row with the monitors off (the price of their
#    one host sync per step), and the peers (lightly's MAE and DINO, MONAI's 3D MAE) when a
#    folder of their pure-Python packages travels in .devsite/ (see below)
# 3. MAE compiled as one graph per loss (--compile full), then MAE and DINO with the encoder and
#    heads compiled (--compile modules)
# bf16 stability: the NaN guard and collapse monitor run in every Lightning row (a non-finite
# loss would be reported as a skipped step and stop nothing).
# Peers: the device has timm and lightning but not lightly or MONAI; both are pure Python, so
#   mkdir -p .devsite && cp -r .venv/lib/python3.11/site-packages/{lightly,monai} .devsite/
# (ignored by git; carry .devsite in the device call).
# Sized to finish in about 8 minutes on an H200; each part has its own time limit so one slow
# part cannot eat the others' time, and train_step prints its rows method by method.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.devsite:.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, timm, lightning; print('torch', torch.__version__, 'timm', timm.__version__, 'lightning', lightning.__version__)" | tee -a "$OUT/gpu.txt"
quiet() { grep -v -E "Warning|warn\(|^\s*$|GPU available|TPU available|litlogger|LOCAL_RANK|stopped: .max_steps"; }
timeout 50 python3 benchmarks/views.py --device cuda --gpu-only --gpu-iters 20 --json "$OUT/views.json" 2>&1 | quiet | tee "$OUT/views.log"
timeout 220 python3 benchmarks/train_step.py --peers --monitors-off --json "$OUT/train_step.json" 2>&1 | quiet | tee "$OUT/train_step.log"
timeout 110 python3 benchmarks/train_step.py --methods mae --compile full --steps 15 --warmup 3 --json "$OUT/train_step_full.json" 2>&1 | quiet | tee "$OUT/train_step_full.log"
timeout 120 python3 benchmarks/train_step.py --methods mae,dino --compile --steps 15 --warmup 3 --json "$OUT/train_step_modules.json" 2>&1 | quiet | tee "$OUT/train_step_modules.log"
echo "gpu_check done"
