# Source on a MareNostrum 5 ACC login node (alogin1/alogin2.bsc.es) before launching Snakemake:
#   source profiles/marenostrum/env.sh
# Every job inherits this environment (the SLURM executor submits with --export=ALL).
# MareNostrum 5 has no internet, login nodes included: the venv, the data, tokenizers and evaluation
# sets are copied in through the transfer nodes (docs/slurm.md, "MareNostrum 5: the transfer path").

# Site software. ASSUMPTION: module names as listed by `module av` on the ACC partition in 2025;
# override with TESSERA_MODULES="..." if BSC renames them.
module purge
# shellcheck disable=SC2086  # the list is meant to split
module load ${TESSERA_MODULES:-python/3.11.5-gcc cuda/12.2 nccl/2.20.5}

# /gpfs/projects/<group> is the project area (large, backed up); /gpfs/scratch/<group> is faster and
# purged. Results and caches go to projects by default; point TESSERA_WORK elsewhere to change it.
TESSERA_WORK=${TESSERA_WORK:-/gpfs/projects/${TESSERA_GROUP:-$(id -gn)}/$USER/tessera}
export TESSERA_WORK
# shellcheck disable=SC1091
source "${TESSERA_VENV:-$TESSERA_WORK/venv}/bin/activate"

# No node has internet: every library reads only its cache.
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export HF_HOME=$TESSERA_WORK/cache/huggingface
export TORCH_HOME=$TESSERA_WORK/cache/torch
export TRITON_CACHE_DIR=$TESSERA_WORK/cache/triton
export TORCH_EXTENSIONS_DIR=$TESSERA_WORK/cache/torch_extensions
export XDG_CACHE_HOME=$TESSERA_WORK/cache
export MPLCONFIGDIR=$TESSERA_WORK/cache/matplotlib
mkdir -p "$HF_HOME" "$TORCH_HOME" "$TRITON_CACHE_DIR" "$TORCH_EXTENSIONS_DIR" "$MPLCONFIGDIR"
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}

[ -n "${TESSERA_ACCOUNT:-}" ] || echo "tessera: export TESSERA_ACCOUNT=<project> (\`bsc_acct\` lists yours) before launching" >&2
