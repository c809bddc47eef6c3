# tessera: data -> tokenizer -> token files -> training stages -> evaluation -> energy -> release.
# Rules are thin: inputs, outputs, resources and one `tessera` call. See docs/architecture.md.
from snakemake.utils import min_version, validate

from tessera.plan.budget import warn_if_over_allocation
from tessera.submission import check_slurm_account

min_version("9.0")


configfile: "config.yaml"


# common.smk validates with tessera's dataclasses first: their messages name the dotted key and the
# allowed values (e.g. the language codes), where a schema error prints the whole schema node.
include: "workflow/rules/common.smk"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/data.smk"
include: "workflow/rules/tokenizer.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/energy.smk"
include: "workflow/rules/release.smk"
include: "workflow/rules/plan.smk"


onstart:
    check_slurm_account(workflow.dag.needrun_jobs())
    # A warning, not a stop: site.allocation_node_hours against what is spent and left (docs/plan.md).
    warn_if_over_allocation(CFG)


rule all:
    input:
        release=rules.release.output.checksums,
        reports=[
            rules.tokenizer_report.output.md,
            rules.eval_report.output.md,
            rules.energy_report.output.md,
        ],
    default_target: True
