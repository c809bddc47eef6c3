# Evaluation: every published checkpoint is scored as soon as its training segment ends.


def all_checkpoints():
    return [(stage, step) for stage in STAGES for step in stage_checkpoints(stage)]


rule evaluate:
    input:
        checkpoint=f"{OUT}/train/{{stage}}/step-{{step}}",
        tokens=expand(f"{OUT}/tokens/{{lang}}/test.bin", lang=LANGUAGES),
    output:
        result=f"{OUT}/eval/{{stage}}/step-{{step}}.json",
        energy=energy_log("evaluate-{stage}-{step}"),
    log:
        log_file("evaluate-{stage}-{step}"),
    benchmark:
        benchmark_file("evaluate-{stage}-{step}")
    wildcard_constraints:
        step=r"\d{6}",
    threads: 2
    resources:
        runtime=60,
        mem_mb=8000,
        gpu=1,
    conda:
        "../envs/tessera.yaml"
    shell:
        "{TESSERA} --energy-out {output.energy} eval checkpoint --checkpoint {input.checkpoint}"
        " --out {output.result} > {log} 2>&1"


rule eval_report:
    input:
        results=[f"{OUT}/eval/{stage}/step-{step:06d}.json" for stage, step in all_checkpoints()],
    output:
        md=report(f"{OUT}/reports/eval.md", category="Evaluation"),
        csv=f"{OUT}/reports/eval.csv",
        energy=energy_log("eval_report"),
    log:
        log_file("eval_report"),
    resources:
        runtime=10,
        mem_mb=2000,
    conda:
        "../envs/tessera.yaml"
    shell:
        "{TESSERA} --energy-out {output.energy} eval report > {log} 2>&1"
