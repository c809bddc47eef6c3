# Source on a Leonardo login node before launching Snakemake:  source profiles/leonardo/env.sh
# Every job inherits this environment (the SLURM executor submits with --export=ALL), so the modules,
# the virtual environment and the cache paths set here are what the compute nodes use.
# Built once beforehand: the venv (see docs/slurm.md, "Login node, once").

# Site software. ASSUMPTION: module names as listed by `module av python cuda nccl` in 2025; override
# with TESSERA_MODULES="..." if CINECA renames them.
module purge
# shellcheck disable=SC2086  # the list is meant to split
module load ${TESSERA_MODULES:-python/3.11.7 cuda/12.2 nccl/2.19.3-1--gcc--12.2.0-cuda-12.2}

# $WORK is the project area (/leonardo_work/<account>): large quota, visible from every node.
# $HOME is small (50 GB) and must not hold caches or results.
TESSERA_WORK=${TESSERA_WORK:-$WORK/$USER/tessera}
export TESSERA_WORK
# shellcheck disable=SC1091
source "${TESSERA_VENV:-$TESSERA_WORK/venv}/bin/activate"

# Compute nodes have no internet: every library reads only its cache. Downloads happen on the login
# node with HF_HUB_OFFLINE=0 for that one command (docs/slurm.md, "Pre-download").
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export HF_HOME=$TESSERA_WORK/cache/huggingface
export TORCH_HOME=$TESSERA_WORK/cache/torch
export TRITON_CACHE_DIR=$TESSERA_WORK/cache/triton
# DeepSpeed compiles its ops once on first use; the cache must be shared by all nodes.
export TORCH_EXTENSIONS_DIR=$TESSERA_WORK/cache/torch_extensions
export XDG_CACHE_HOME=$TESSERA_WORK/cache
export MPLCONFIGDIR=$TESSERA_WORK/cache/matplotlib
mkdir -p "$HF_HOME" "$TORCH_HOME" "$TRITON_CACHE_DIR" "$TORCH_EXTENSIONS_DIR" "$MPLCONFIGDIR"

# Leonardo's compute nodes reach each other over InfiniBand HDR; NCCL finds it by itself. Keep
# NCCL's own timeout errors visible in the job logs.
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}

[ -n "${TESSERA_ACCOUNT:-}" ] || echo "tessera: export TESSERA_ACCOUNT=<project> (\`saldo -b\` lists yours) before launching" >&2
