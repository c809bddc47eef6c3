# Energy report: joins every job's energy log and Snakemake benchmark file. Runnable alone on the
# logs a run left: `snakemake energy_report`.


rule energy_report:
    input:
        logs=[rules.prepare_data.output.energy],
    output:
        md=report(f"{OUT}/reports/energy.md", category="Energy"),
        csv=f"{OUT}/reports/energy.csv",
    log:
        log_file("energy_report"),
    resources:
        runtime=10,
        mem_mb=2000,
    conda:
        "../envs/tessera.yaml"
    shell:
        "{TESSERA} energy report > {log} 2>&1"
