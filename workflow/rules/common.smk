# Shared by every .smk file, the validated config, the output layout and the `tessera` command line.
from pathlib import Path

from snakemake.exceptions import WorkflowError

from tessera.config import from_mapping
from tessera.data.plan import language_parts, shard_plan
from tessera.data.sources import source_inputs
from tessera.layout import SPLITS, RunLayout, checkpoint_steps

# Jobs rebuild the config from the config files alone (TESSERA_ARGS below), so a `--config key=value`
# would change the DAG but not what the jobs compute: refuse it rather than run a mixed configuration.
if workflow.config_settings.config:
    raise WorkflowError(
        "snakemake --config key=value overrides are not passed to the jobs; put them in an overlay YAML "
        "and add it after config.yaml: --configfile config.yaml overlay.yaml "
        f"(got --config {' '.join(f'{key}={value}' for key, value in workflow.config_settings.config.items())})"
    )
# Validating with the dataclasses here stops a bad config before any job runs (the JSON schema above
# checks the workflow's shape; the dataclasses check every value with the same code the jobs use).
CFG = from_mapping(config, Path(workflow.configfiles[-1]) if workflow.configfiles else None)
LAYOUT = RunLayout(CFG.out_dir)
OUT = str(CFG.out_dir)
LANGUAGES = CFG.data.languages

# Every job reads the same config files Snakemake merged, in the same order. Snakemake lists the
# command line's --configfile files first and the Snakefile's `configfile:` last, but merges the
# command line's over it: pass the Snakefile's first so that a later file wins, as in Snakemake.
_CLI_CONFIGS = [Path(f).resolve() for f in workflow.overwrite_configfiles or []]
_CONFIGS = [Path(f).resolve() for f in workflow.configfiles if Path(f).resolve() not in _CLI_CONFIGS]
TESSERA_ARGS = " ".join(f"--config {f}" for f in [*_CONFIGS, *_CLI_CONFIGS])
TESSERA = f"tessera {TESSERA_ARGS}"


def energy_log(job):
    """The energy meter's JSONL for one job; the energy report joins them all."""
    return str(LAYOUT.energy_dir / f"{job}.jsonl")


def benchmark_file(job):
    return str(LAYOUT.benchmarks_dir / f"{job}.tsv")


def log_file(job):
    return f"{OUT}/logs/{job}.log"


def report_file(name):
    return str(LAYOUT.reports_dir / name)


# The data stage's shards (data.smk, tokenizer.smk): (language, part) -> its slice of a source.
SHARDS = {(spec.language, f"{spec.part:05d}"): spec for spec in shard_plan(CFG)}
DEDUP_GROUPS = [f"{group:03d}" for group in range(CFG.data.num_dedup_jobs)]


def shard_sources(wildcards):
    """The files of the source a prepare shard reads (a change reruns its shards)."""
    return source_inputs(CFG, SHARDS[wildcards.lang, wildcards.part].source)


def language_shard_work(wildcards):
    return [str(LAYOUT.shard_work(wildcards.lang, spec.part)) for spec in language_parts(CFG, wildcards.lang)]


def all_shards(path_of):
    """`path_of(lang, part)` for every shard of the plan."""
    return [str(path_of(lang, part)) for lang, part in SHARDS]


def language_token_shards(wildcards):
    return [
        f"{LAYOUT.token_shard(wildcards.lang, split, spec.part)}.json"
        for spec in language_parts(CFG, wildcards.lang)
        for split in SPLITS
    ]


# Training segments (train.smk), their evaluation (eval.smk) and the release's final checkpoint.
STAGES = [stage.name for stage in CFG.train.stages]


def stage_checkpoints(stage):
    """Published checkpoint steps of a stage."""
    return checkpoint_steps(CFG.train.stage(stage).num_steps, CFG.train.checkpoint_every)


def final_checkpoint(stage):
    return str(LAYOUT.checkpoint(stage, stage_checkpoints(stage)[-1]))


def previous_checkpoint(wildcards):
    """The checkpoint a segment starts from: the previous segment's, or the previous stage's last."""
    steps = stage_checkpoints(wildcards.stage)
    index = steps.index(int(wildcards.step))
    if index > 0:
        return [str(LAYOUT.checkpoint(wildcards.stage, steps[index - 1]))]
    position = STAGES.index(wildcards.stage)
    return [final_checkpoint(STAGES[position - 1])] if position > 0 else []


def all_checkpoints():
    return [(stage, step) for stage in STAGES for step in stage_checkpoints(stage)]


def energy_logs():
    """The energy log of every compute job in the DAG, from each rule's own `output.energy` pattern."""
    shard_langs = [lang for lang, _ in SHARDS]
    shard_parts = [part for _, part in SHARDS]
    checkpoints = all_checkpoints()
    stages = [stage for stage, _ in checkpoints]
    steps = [f"{step:06d}" for _, step in checkpoints]
    return [
        *expand(rules.prepare_shard.output.energy, zip, lang=shard_langs, part=shard_parts),
        *expand(rules.dedup_pairs.output.energy, lang=LANGUAGES, group=DEDUP_GROUPS),
        *expand(rules.dedup_removals.output.energy, lang=LANGUAGES),
        *expand(rules.write_shard.output.energy, zip, lang=shard_langs, part=shard_parts),
        *expand(rules.tokenize.output.energy, zip, lang=shard_langs, part=shard_parts),
        rules.prepare_data.output.energy,
        rules.train_tokenizer.output.energy,
        rules.tokenizer_report.output.energy,
        *expand(rules.train.output.energy, zip, stage=stages, step=steps),
        *expand(rules.evaluate.output.energy, zip, stage=stages, step=steps),
        rules.eval_report.output.energy,
    ]
