# Energy report: joins every job's energy log, Snakemake benchmark file and the training logs.
# Runnable alone on the logs a run left: `snakemake energy_report`. Its inputs are only the energy
# logs (outputs of the jobs), so deleting the report reruns this rule and nothing else; benchmark files
# and metrics.jsonl are read from disk, not declared (each is written by the job whose log is an input).


rule energy_report:
    input:
        logs=energy_logs,  # an input function: every rule with an `energy` output (common.smk)
    output:
        md=report(report_file("energy.md"), category="Energy"),
        csv=report_file("energy.csv"),
        summary=report_file("energy.json"),
        stages_png=report(report_file("energy_stages.png"), category="Energy"),
        power_png=report(report_file("energy_power.png"), category="Energy"),
        per_token_png=report(report_file("energy_per_token.png"), category="Energy"),
        emissions_png=report(report_file("energy_emissions.png"), category="Energy"),
    log:
        log_file("energy_report"),
    params:
        tessera=TESSERA,
    resources:
        runtime=10,
        mem_mb=2000,
    conda:
        "../envs/report.yaml"
    shell:
        "{params.tessera} energy report > {log:q} 2>&1"
