#!/bin/bash
# The LM environments' GPU checks on one device (docs/benchmarks/lm_envs.md): the full-size pipelines
# of tests/test_lm_full.py at world size 1 (restricted_mlm at the paper's shapes and evaluation,
# scaling_law at the experiment cap, fix_embedding small on the GPU). Run from the repo root on the
# device with the project and its missing pure dependencies as wheels in .whl:
#   .venv/bin/pip wheel --no-deps --no-build-isolation -w .whl .    # here, before the call
#   OUT=/tmp/out bash benchmarks/lm_envs_device.sh                  # there
# The project is installed into the device's Python (not put on PYTHONPATH) because the scorer runs
# agent code as an unprivileged user with a minimal environment, which must import it too.
set -u
OUT=${OUT:-/tmp/lm_out}; mkdir -p "$OUT"
REPO=$PWD
export PYTHONUNBUFFERED=1 REBENCH_LM_GPU_RECORD="$OUT/gpu.jsonl"
python3 -m pip install -q --no-index --no-deps --no-compile .whl/*.whl > "$OUT/pip.log" 2>&1 || { cat "$OUT/pip.log"; exit 1; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc; date -u;
  python3 -c "import torch; print('torch', torch.__version__)"; } | tee "$OUT/device.txt"
T="$REPO/tests/test_lm_full.py"
cd /tmp && timeout "${LIMIT:-270}" python3 -m pytest -m gpu -v -p no:cacheprovider --rootdir "$REPO" --timeout 200 \
    "$T::test_scaling_law_full_experiments_at_the_cap_back_to_back" "$T::test_restricted_mlm_full_pipeline" \
    "$T::test_fix_embedding_small_on_the_gpu" 2>&1 | grep -v "DEBUG\|^$" | tee "$OUT/pytest.log" | tail -40
cat "$OUT/gpu.jsonl" 2>/dev/null
