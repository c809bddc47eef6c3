# Training: each stage is a chain of segments; a segment trains up to the next published checkpoint,
# so each checkpoint is evaluated while the following segment trains. Engine state lives in
# state/<stage>/ (not an output: Snakemake deletes outputs of failed jobs), so a retried job resumes.

STAGES = [stage.name for stage in CFG.train.stages]


def stage_checkpoints(stage):
    """Published checkpoint steps of a stage."""
    spec = next(s for s in CFG.train.stages if s.name == stage)
    return checkpoint_steps(spec.num_steps, CFG.train.checkpoint_every)


def final_checkpoint(stage):
    return f"{OUT}/train/{stage}/step-{stage_checkpoints(stage)[-1]:06d}"


def previous_checkpoint(wildcards):
    """The checkpoint this segment starts from: the previous segment's, or the previous stage's last."""
    steps = stage_checkpoints(wildcards.stage)
    index = steps.index(int(wildcards.step))
    if index > 0:
        return [f"{OUT}/train/{wildcards.stage}/step-{steps[index - 1]:06d}"]
    position = STAGES.index(wildcards.stage)
    return [final_checkpoint(STAGES[position - 1])] if position > 0 else []


rule train:
    input:
        previous=previous_checkpoint,
        tokens=expand(f"{OUT}/tokens/{{lang}}/{{split}}.bin", lang=LANGUAGES, split=["train", "validation"]),
        tokenizer=rules.train_tokenizer.output.tokenizer,
    output:
        checkpoint=directory(f"{OUT}/train/{{stage}}/step-{{step}}"),
        energy=energy_log("train-{stage}-{step}"),
    log:
        log_file("train-{stage}-{step}"),
    benchmark:
        benchmark_file("train-{stage}-{step}")
    wildcard_constraints:
        step=r"\d{6}",
    threads: 2
    resources:
        runtime=60,
        mem_mb=8000,
        # Local runs launch the ranks with torchrun; SLURM profiles set mpi="srun" (one task per GPU).
        mpi=f"torchrun --standalone --nproc-per-node={CFG.train.local_processes}",
    conda:
        "../envs/tessera.yaml"
    shell:
        "{resources.mpi} $(which tessera) {TESSERA_ARGS} --energy-out {output.energy}"
        " train --stage {wildcards.stage} --until-step {wildcards.step} > {log} 2>&1"
