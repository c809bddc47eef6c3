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
# Venv, offline Hugging Face (no node has internet), caches on $TESSERA_WORK, NCCL_DEBUG.
# shellcheck source=profiles/site-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/../site-env.sh"

[ -n "${TESSERA_ACCOUNT:-}" ] || echo "tessera: export TESSERA_ACCOUNT=<project> (\`bsc_acct\` lists yours) before launching" >&2
