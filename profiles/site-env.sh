# The part of profiles/<site>/env.sh that every site shares, sourced by it once the site's modules are
# loaded and TESSERA_WORK (large, visible from every node) is set: the venv, offline Hugging Face, and
# the caches on TESSERA_WORK. Every job inherits it (the SLURM executor submits with --export=ALL).
: "${TESSERA_WORK:?profiles/<site>/env.sh sets TESSERA_WORK before sourcing site-env.sh}"
# shellcheck disable=SC1091
source "${TESSERA_VENV:-$TESSERA_WORK/venv}/bin/activate"

# Compute nodes have no internet: every library reads only its cache (docs/slurm.md, "Pre-download").
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export HF_HOME=$TESSERA_WORK/cache/huggingface
export TORCH_HOME=$TESSERA_WORK/cache/torch
export TRITON_CACHE_DIR=$TESSERA_WORK/cache/triton
# DeepSpeed compiles its ops once on first use; the cache must be shared by all nodes.
export TORCH_EXTENSIONS_DIR=$TESSERA_WORK/cache/torch_extensions
export XDG_CACHE_HOME=$TESSERA_WORK/cache
export MPLCONFIGDIR=$TESSERA_WORK/cache/matplotlib
mkdir -p "$HF_HOME" "$TORCH_HOME" "$TRITON_CACHE_DIR" "$TORCH_EXTENSIONS_DIR" "$MPLCONFIGDIR"

# Keep NCCL's own timeout errors visible in the job logs.
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
