# Release: the Hugging Face model, model card and AI Act documents, from measured facts.


rule release:
    input:
        checkpoint=final_checkpoint(STAGES[-1]),
        manifest=f"{OUT}/data/manifest.json",
        eval_report=rules.eval_report.output.md,
        energy_report=rules.energy_report.output.md,
        tokenizer_report=rules.tokenizer_report.output.md,
    output:
        checksums=f"{OUT}/release/MANIFEST.sha256",
    log:
        log_file("release"),
    resources:
        runtime=20,
        mem_mb=8000,
    conda:
        "../envs/tessera.yaml"
    shell:
        "{TESSERA} release > {log} 2>&1"
