#!/usr/bin/env bash
# Every GPU check in one run, for a lent H100/H200 (its own torch, no network), from the source tree:
#   bash benchmarks/gpu_check.sh            # writes logs and JSON to $OUT (or ./gpu_out)
# 1. the GPU batch view path (views/s; goal >= 5,000 2D and >= 2,500 3D views/s)
# 2. every SSL method's Lightning step vs the plain torch loop at the DESIGN.md shapes
#    (images/s, peak memory, MFU; bf16), then MAE and DINO compiled
# 3. bf16 stability: the NaN guard and collapse monitor values are part of train_step's rows
# Sized to finish in about 8 minutes on an H200; each part has its own time limit so one
# slow part cannot eat the others' time.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, timm, lightning; print('torch', torch.__version__, 'timm', timm.__version__, 'lightning', lightning.__version__)" | tee -a "$OUT/gpu.txt"
timeout 150 python3 benchmarks/views.py --device cuda --gpu-only --json "$OUT/views.json" 2>&1 | tee "$OUT/views.log"
timeout 300 python3 benchmarks/train_step.py --json "$OUT/train_step.json" ${PEERS:+--peers} 2>&1 | tee "$OUT/train_step.log"
timeout 150 python3 benchmarks/train_step.py --methods mae,dino --compile --json "$OUT/train_step_compiled.json" 2>&1 | tee "$OUT/train_step_compiled.log"
echo "gpu_check done"
