# Training: each stage is a chain of segments; a segment trains up to the next published checkpoint,
# so each checkpoint is evaluated while the following segment trains. Engine state lives in
# state/<stage>/ (not an output: Snakemake deletes outputs of failed jobs), so a retried job resumes.
# A preempted segment saves its state and exits 75; the profile's retries rerun it (docs/training.md).
# Helpers (STAGES, stage_checkpoints, previous_checkpoint, final_checkpoint) are in common.smk.

rule train:
    input:
        previous=previous_checkpoint,
        tokens=[
            str(LAYOUT.token_index(lang, split))
            for lang in LANGUAGES
            for split in ("train", "validation")
        ],
        tokenizer=rules.train_tokenizer.output.tokenizer,
    output:
        checkpoint=directory(str(LAYOUT.checkpoint("{stage}", "{step}"))),
        energy=energy_log(job("train", "stage", "step")),
    log:
        log_file(job("train", "stage", "step")),
    benchmark:
        benchmark_file(job("train", "stage", "step"))
    wildcard_constraints:
        step=r"\d{6}",
    threads: CFG.train.local_processes
    resources:
        runtime=60,
        mem_mb=8000,
        # Local runs launch the ranks with tessera.parallel.launch (forwards signals, ranks die with it);
        # SLURM profiles set mpi="srun" (one task per GPU).
        mpi=f"python -m tessera.parallel.launch --nproc-per-node={CFG.train.local_processes}",
    params:
        tessera_args=TESSERA_ARGS,
    conda:
        "../envs/train.yaml"
    shell:
        "{resources.mpi} \"$(command -v tessera)\" {params.tessera_args} --energy-out {output.energy:q}"
        " train --stage {wildcards.stage:q} --until-step {wildcards.step:q} > {log:q} 2>&1"
