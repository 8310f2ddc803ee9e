#!/usr/bin/env bash
# Label efficiency on a lent H100/H200 (issue 5): the three public labeled sets with a bigger
# encoder and schedule than a CPU allows, from the source tree, in one device call.
# The sets live in ../shared, which does not travel with the working tree; copy them into an
# ignored folder of the repository first (33 MB) and carry it with the call:
#   mkdir -p .devdata && cp -r ../shared/data/labeled .devdata/ && echo /.devdata/ >> .git/info/exclude
#   device run: carry [".devdata"], command: OUT=$OUT bash benchmarks/gpu_label_efficiency.sh
# Everything it needs beyond torch, timm and lightning (numpy, scikit-learn, Pillow, pyyaml) is
# on the device image. Each dataset gets its own time limit and writes its own summary, so one
# slow set cannot take the others' time. Defaults sized for about 9 minutes on an H200;
# STEPS / ARCH override them.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export DOMAINSSL_SHARED_DATA=${DOMAINSSL_SHARED_DATA:-$PWD/.devdata}
OUT=${OUT:-gpu_out}
STEPS=${STEPS:-1500}
ARCH=${ARCH:-resnet18}
SETS=${SETS:-pneumoniamnist coffee jurkat}
ACCEL=${ACCEL:-gpu}            # ACCEL=cpu PRECISION=32-true STEPS=5 ARCH=test_resnet: a smoke run
PRECISION=${PRECISION:-bf16-mixed}
mkdir -p "$OUT"
PY=${PY:-python3}               # the device's python3 holds torch; here: PY=.venv/bin/python
MACHINE=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
MACHINE=${MACHINE:-CPU smoke run}
echo "machine: $MACHINE"
. benchmarks/gpu_part.sh
for set in $SETS; do
  part "le_$set" 170 "$PY" benchmarks/label_efficiency.py --datasets "$set" --arch "$ARCH" \
    --steps "$STEPS" --batch-size 256 --accelerator "$ACCEL" --precision "$PRECISION" \
    --workers 4 --machine "$MACHINE" --out "/tmp/le_$set"
  # Only the summary comes back (the device returns at most 8 files).
  cp "/tmp/le_$set/summary.json" "$OUT/le_$set.json" 2>/dev/null
done
echo "gpu_label_efficiency done"
