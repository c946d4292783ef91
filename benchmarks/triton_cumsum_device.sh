#!/bin/bash
# The device part of triton_cumsum's measurements (docs/benchmarks/triton_cumsum.md): the GPU tests
# (references, calibration of this GPU, the start's normalised score, the attacks at full), the
# official score's wall-time breakdown, and the timing-loop probe. Run from a checkout's root with
# our pure dependencies as wheels in .whl (the device image has torch and triton, not pydantic or
# structlog). Every result lands in $OUT as it is written.
set -u
OUT=${OUT:-/tmp/tc_out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
# our packages by path, under their import names (setup.py maps them the same way)
SHIM=$(mktemp -d)
ln -s "$PWD/rebench_core" "$SHIM/rebench_core"
ln -s "$PWD/environments" "$SHIM/rebench_environments"
export PYTHONPATH="/tmp/site:$SHIM" PYTHONUNBUFFERED=1 REBENCH_TEST_CACHE=/tmp/tc_cache
mkdir -p /tmp/tc_cache
# the unprivileged agent user must be able to run this Python (what `rebench-doctor --fix` does)
PY=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
d=$(dirname "$PY"); while [ "$d" != / ]; do chmod o+x "$d"; d=$(dirname "$d"); done
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader; date -u;
  nproc; python3 -c 'import torch, triton; print(torch.__version__, triton.__version__)'; } | tee "$OUT/device.txt"
python3 -m pytest -p no:cacheprovider tests/test_triton_cumsum_gpu.py -s -v -o addopts="" --timeout 150 2>&1 \
    | grep -v "^iter " > "$OUT/gpu_tests.log"
python3 benchmarks/triton_cumsum_latency.py > "$OUT/latency.md" 2>&1
python3 benchmarks/triton_cumsum_score_time.py --size full --repeats ${REPEATS:-3} --cache-root /tmp/tc_cache \
    --details-out "$OUT/score_details.jsonl" > "$OUT/score_time.md" 2> "$OUT/score_time.log"
[ -n "${PROBE:-}" ] && python3 benchmarks/triton_cumsum_timing_probe.py > "$OUT/probe.md" 2>&1
cp /tmp/tc_cache/triton_cumsum/calibration-*.json "$OUT/" 2>/dev/null
grep -E "passed|failed|PASSED|FAILED|ERROR|^normalisation" "$OUT/gpu_tests.log" | cut -c1-400
grep -E "^(start|reference|calibration):" "$OUT/gpu_tests.log" | cut -c1-300
cat "$OUT/latency.md" "$OUT/score_time.md" "$OUT"/probe.md 2>/dev/null; grep -c rejected "$OUT/score_time.log"
