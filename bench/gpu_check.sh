#!/usr/bin/env bash
# The GPU check, in one go, on a machine with one NVIDIA GPU (issue 4 / 10):
#   1. the model tests on CUDA (TESSERA_TEST_DEVICE=cuda; tests marked gpu run too),
#   2. bench/moe_layer.py on CUDA in bf16 (tessera's MoE layer vs dense and peers),
#   3. bench/mfu_step.py: training steps of the cluster preset with layers cut to fit one card -> MFU,
#   4. bench/energy_meter.py --gpu-check: NVML's energy counter around a bf16 run vs its sampled power
#      integrated (issue 7; needs nvidia-ml-py, which the device image has).
# Tables go to bench/RESULTS.md (sections moe_layer, gpu_mfu); logs and a copy of RESULTS.md to $OUT
# (the device runner's output folder) or a temporary folder.
# Needs torch, transformers, tokenizers, safetensors, pyyaml, pytest; not deepspeed/snakemake/codecarbon
# (the model code imports none of them; the DeepSpeed peer of the benchmark is skipped when absent).
#   bash bench/gpu_check.sh            # every part; the exit status is non-zero if any part failed
#   MFU_ARGS="--layers 2" bash bench/gpu_check.sh
#   DEVICE=cpu MOE_ARGS="--shapes 8x2 --tokens 256 --rounds 1 --no-peers --no-record" \
#     MFU_ARGS="--layers 1 --batch 1 --seq-len 32 --steps 1 --no-record" bash bench/gpu_check.sh  # dry run
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
DEVICE="${DEVICE:-cuda}"
export TESSERA_TEST_DEVICE="$DEVICE"
LOGS="${OUT:-$(mktemp -d)}"
mkdir -p "$LOGS"
status=0

run() {  # run NAME TIMEOUT_S COMMAND...: tee its output to $LOGS/NAME.log, record failures, go on
    local name=$1 limit=$2
    shift 2
    echo "=== $name: $*"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$LOGS/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc after $((SECONDS - start)) s"
    [ "$rc" -eq 0 ] || status=1
}

if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,power.limit --format=csv | tee "$LOGS/gpu.txt" || true
fi
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
python -c "import pytest" 2>/dev/null || echo "pytest is not installed: the model_tests part will fail"

run model_tests 150 python -m pytest -q -p no:cacheprovider -m "not slurm" tests/model
run moe_layer 240 python bench/moe_layer.py --device "$DEVICE" --dtype bf16 --shapes all ${MOE_ARGS:-}
run mfu_step 150 python bench/mfu_step.py --device "$DEVICE" ${MFU_ARGS:-}
if [ "$DEVICE" = cuda ]; then
    run energy_counter 120 python bench/energy_meter.py --gpu-check --seconds "${ENERGY_SECONDS:-60}"
fi

cp bench/RESULTS.md "$LOGS/RESULTS.md" 2>/dev/null || true
echo "logs: $LOGS"
if [ "$status" -eq 0 ]; then echo "gpu_check: all parts passed"; else echo "gpu_check: some part FAILED (see $LOGS)"; fi
exit $status
