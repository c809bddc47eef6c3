# Release: the Hugging Face model, model card and AI Act documents, from measured facts (docs/release.md).
# The inputs are the files the documents are generated from, so editing the config's release: section
# and deleting release/ reruns this job alone. No --energy-out: the energy report is an input, so this
# job's own joules could not be in it (a few seconds of CPU; docs/release.md, "Not covered").


rule release:
    input:
        checkpoint=final_checkpoint(STAGES[-1]),
        manifest=rules.prepare_data.output.manifest,
        eval_summary=rules.eval_report.output.summary,
        energy_summary=rules.energy_report.output.summary,
        tokenizer_report=rules.tokenizer_report.output.md,
    output:
        checksums=str(LAYOUT.release_dir / "MANIFEST.sha256"),
    log:
        log_file("release"),
    params:
        tessera=TESSERA,
    resources:
        runtime=20,
        mem_mb=8000,
    conda:
        "../envs/release.yaml"
    shell:
        "{params.tessera} release > {log:q} 2>&1"
