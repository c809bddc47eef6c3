# Evaluation: every published checkpoint is scored as soon as its training segment ends (the next
# segment trains meanwhile). A checkpoint that cannot be loaded fails its own job with a message naming
# it and writes no result; `snakemake --keep-going` still evaluates every other checkpoint, and
# `tessera eval report` run by hand reports those and lists the missing one.
from tessera.eval.tasks import hf_home, upstream_tasks

UPSTREAM_TASKS = upstream_tasks(CFG.eval.tasks)
# Stamp of the login-node download of upstream tasks' datasets; only in the DAG when there are some.
EVAL_DATASETS_STAMP = str(hf_home(CFG) / "tessera-eval-datasets.json")


if UPSTREAM_TASKS:

    # Compute nodes have no internet: the hub datasets of upstream lm-eval tasks are cached here first.
    localrules:
        cache_eval_datasets,

    rule cache_eval_datasets:
        output:
            stamp=EVAL_DATASETS_STAMP,
        log:
            log_file("cache_eval_datasets"),
        params:
            tessera=TESSERA,
        conda:
            "../envs/eval.yaml"
        shell:
            "{params.tessera} eval cache-datasets --stamp {output.stamp:q} > {log:q} 2>&1"


rule evaluate:
    input:
        checkpoint=str(LAYOUT.checkpoint("{stage}", "{step}")),
        tokens=[str(LAYOUT.token_index(lang, "test")) for lang in LANGUAGES],
        datasets=[EVAL_DATASETS_STAMP] if UPSTREAM_TASKS else [],
    output:
        result=str(LAYOUT.eval_result("{stage}", "{step}")),
        energy=energy_log(job("evaluate", "stage", "step")),
    log:
        log_file(job("evaluate", "stage", "step")),
    benchmark:
        benchmark_file(job("evaluate", "stage", "step"))
    wildcard_constraints:
        step=r"\d{6}",
    threads: 2
    resources:
        runtime=60,
        mem_mb=8000,
        gpu=1,
    params:
        tessera=TESSERA,
    conda:
        "../envs/eval.yaml"
    shell:
        "{params.tessera} --energy-out {output.energy:q} eval checkpoint --checkpoint {input.checkpoint:q}"
        " --out {output.result:q} > {log:q} 2>&1"


rule eval_report:
    input:
        results=[str(LAYOUT.eval_result(stage, step)) for stage, step in all_checkpoints()],
    output:
        md=report(report_file("eval.md"), category="Evaluation"),
        csv=report_file("eval.csv"),
        tasks_csv=report_file("eval_tasks.csv"),
        summary=report_file("eval.json"),
        bits_per_byte=report(report_file("eval_bits_per_byte.png"), category="Evaluation"),
        tasks_png=report(report_file("eval_tasks.png"), category="Evaluation"),
        energy=energy_log("eval_report"),
    log:
        log_file("eval_report"),
    benchmark:
        benchmark_file("eval_report")
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        tessera=TESSERA,
    conda:
        "../envs/report.yaml"
    shell:
        "{params.tessera} --energy-out {output.energy:q} eval report > {log:q} 2>&1"
