#!/usr/bin/env bash
# Issue 5's GPU checks in one run on a lent device machine (about 6 minutes on an H100).
#
# Here, once:   bash scripts/gpu_wheels.sh      (the wheels the device's Python lacks, into .whl/)
# Then:         run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=540)
#
# Writes under $OUT: device.txt, test_cuda.txt, nccl.txt, bench_paper.txt/.json, bench_default.txt/.json.
# Each step has its own time limit, so one that hangs leaves the others their time.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed" >&2; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 GVR_PROGRESS=0

step() {  # step NAME SECONDS COMMAND...: run, keep its output in $OUT/NAME.txt, report its status
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  echo "== $name: exit $rc in $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
  tail -n 15 "$OUT/$name.txt"
}

step device 30 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; \
  $PY -c 'import torch, pandas, numpy; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \
  torch.cuda.get_device_name(0), \"pandas\", pandas.__version__, \"numpy\", numpy.__version__)'"

step test_cuda 150 "$PY" -m pytest -q -rs -p no:cacheprovider tests/modelling/nets/test_cuda.py

# NCCL: torchrun with one process per GPU trains the tiny study through the CLI (DDP wraps the
# networks only when there are two or more processes; with one GPU this checks NCCL's start-up,
# the stage decision broadcast and the barrier on CUDA tensors).
GPUS=$(nvidia-smi -L | wc -l)
step nccl 150 bash -c "rm -rf /tmp/nccl && $PY -m modelling.cli cohort synth --config tiny --out /tmp/nccl \
  && $PY -m torch.distributed.run --standalone --nproc_per_node $GPUS -m modelling.cli train --config tiny --bundle /tmp/nccl \
  && $PY -c 'import json; s = json.load(open(\"/tmp/nccl/train/summary.json\")); print(\"decoder img/s\", s[\"decoder\"][\"images_per_second\"])'"

# The paper profile (128 px, 64 feature maps): throughput, peak memory, FLOP utilisation, and the
# effect of bf16, channels_last and torch.compile, each flipped in the same run.
step bench_paper 240 "$PY" benchmarks/bench_training.py --profile paper --device cuda --iterations 20 --switches \
  --json "$OUT/bench_paper.json"
step bench_default 60 "$PY" benchmarks/bench_training.py --profile default --device cuda --iterations 20 \
  --json "$OUT/bench_default.json"
cat "$OUT/summary.txt"
