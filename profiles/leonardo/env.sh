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
# Venv, offline Hugging Face, caches on $TESSERA_WORK, NCCL_DEBUG. Downloads happen on the login node
# with HF_HUB_OFFLINE=0 for that one command (docs/slurm.md, "Pre-download"). Leonardo's compute nodes
# reach each other over InfiniBand HDR; NCCL finds it by itself.
# shellcheck source=profiles/site-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/../site-env.sh"

[ -n "${TESSERA_ACCOUNT:-}" ] || echo "tessera: export TESSERA_ACCOUNT=<project> (\`saldo -b\` lists yours) before launching" >&2
