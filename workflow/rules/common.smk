# Shared by every .smk file, the validated config, the output layout and the `tessera` command line.
import os
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.io import apply_wildcards

from tessera.config import from_mapping
from tessera.data.plan import language_parts, shard_plan
from tessera.data.sources import source_inputs
from tessera.errors import TesseraError
from tessera.layout import SPLITS, TOKEN_SUFFIXES, RunLayout, checkpoint_steps, job_name
from tessera.preflight import check_run


def refuse(message):
    """Stop before any job runs with `message` alone (Snakemake would add a traceback to an exception)."""
    print(message, file=sys.stderr)
    sys.exit(1)


# Rules call `tessera` and `torchrun` by name. The interpreter running Snakemake imported tessera above, so
# its bin folder has them: put it first on PATH, so that `.venv/bin/snakemake` works without an activated
# venv (jobs inherit this environment, SLURM jobs too; a `--sdm conda` env is activated in front of it).
_BIN = str(Path(sys.executable).parent)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _BIN:
    os.environ.update(PATH=os.pathsep.join(filter(None, [_BIN, os.environ.get("PATH")])))

# Jobs rebuild the config from the config files alone (TESSERA_ARGS below), so a `--config key=value`
# would change the DAG but not what the jobs compute: refuse it rather than run a mixed configuration.
if workflow.config_settings.config:
    _GIVEN = " ".join(f"{key}={value}" for key, value in workflow.config_settings.config.items())
    refuse(
        f"ConfigError: snakemake --config {_GIVEN}: key=value overrides are not passed to the jobs; put them "
        "in an overlay YAML and add it after config.yaml: --configfile config.yaml overlay.yaml"
    )


def train_ranks():
    """Ranks one training job starts: the profile's geometry for `train` jobs (SLURM: nodes x
    tasks_per_node, or tasks), else the local launcher's train.local_processes (the rule's `mpi` default)."""
    train = workflow.resource_settings.overwrite_resources.get("train", {})

    def value(name, default):  # a profile's value, plain or as Snakemake's Resource
        return int(getattr(train[name], "value", train[name])) if name in train else default

    if "tasks_per_node" in train:
        return value("nodes", 1) * value("tasks_per_node", 1)
    return value("tasks", CFG.train.local_processes)


# Every job reads the same config files Snakemake merged, in the same order. Snakemake lists the
# command line's --configfile files first and the Snakefile's `configfile:` last, but merges the
# command line's over it: pass the Snakefile's first so that a later file wins, as in Snakemake.
_CLI_CONFIGS = [Path(f).resolve() for f in workflow.overwrite_configfiles or []]
_CONFIGS = [Path(f).resolve() for f in workflow.configfiles if Path(f).resolve() not in _CLI_CONFIGS]
CONFIG_FILES = [*_CONFIGS, *_CLI_CONFIGS]

# The dataclasses check every value with the same code the jobs use, then `check_run` what the jobs would
# find out only once started (batch vs micro batch x ranks, seq_len vs the model, expert parallelism), so
# a bad config stops here, before any job runs (the JSON schema in the Snakefile checks the shape).
_LABEL = " + ".join(map(str, CONFIG_FILES)) or "config"
try:
    CFG = from_mapping(config, CONFIG_FILES[-1] if CONFIG_FILES else None, label=_LABEL)
except TesseraError as err:
    refuse(f"{type(err).__name__}: {err}")
try:
    check_run(CFG, train_ranks())
except TesseraError as err:
    refuse(f"{type(err).__name__}: {_LABEL}: {err}")
LAYOUT = RunLayout(CFG.out_dir)
LANGUAGES = CFG.data.languages

# Shell-quoted: a config path with a space or a `$` is one argument, never shell text.
TESSERA_ARGS = shlex.join(arg for path in CONFIG_FILES for arg in ("--config", str(path)))
TESSERA = f"tessera {TESSERA_ARGS}"


def job(rule, *wildcards):
    """A job's name pattern for its log, benchmark and energy files: `job("train", "stage", "step")` is
    "train-{stage}-{step}" (tessera.layout.job_name; the energy report splits names the same way)."""
    return job_name(rule, *(f"{{{name}}}" for name in wildcards))


def energy_log(name):
    """The energy meter's JSONL for one job; the energy report joins them all."""
    return str(LAYOUT.energy_log(name))


def benchmark_file(name):
    return str(LAYOUT.benchmark(name))


def log_file(name):
    return str(LAYOUT.log(name))


def report_file(name):
    return str(LAYOUT.report(name))


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
        str(LAYOUT.token_file(wildcards.lang, split, spec.part, ".json"))
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


def job_wildcards():
    """Every job's wildcard values, by the set of wildcard names its rule uses."""
    checkpoints = [{"stage": stage, "step": f"{step:06d}"} for stage, step in all_checkpoints()]
    shards = [{"lang": lang, "part": part} for lang, part in SHARDS]
    groups = [{"lang": lang, "group": group} for lang in LANGUAGES for group in DEDUP_GROUPS]
    return {
        frozenset(): [{}],
        frozenset({"lang"}): [{"lang": lang} for lang in LANGUAGES],
        frozenset({"lang", "part"}): shards,
        frozenset({"lang", "group"}): groups,
        frozenset({"stage", "step"}): checkpoints,
    }


# Metered rules a run does not need: they are run on purpose (`snakemake calibrate`) and measure the site
# for the planner, not the model; their energy logs stay in energy/ beside the others.
ON_DEMAND_RULES = {"calibrate"}


def metered_rules():
    """The rules whose jobs write an energy log: those that declare an `energy` output (less on-demand ones)."""
    metered = [r for r in workflow.rules if "energy" in dict(r.output.items())]
    return [r for r in metered if r.name not in ON_DEMAND_RULES]


def energy_logs(wildcards=None):
    """The energy log of every metered job in the DAG (an input function: it runs once all rules exist,
    so a new rule with an `energy` output is in the energy report without being listed anywhere)."""
    values = job_wildcards()
    logs = []
    for metered in metered_rules():
        pattern = str(dict(metered.output.items())["energy"])
        combos = values.get(frozenset(metered.wildcard_names))
        if combos is None:
            raise WorkflowError(
                f"Rule {metered.name}'s energy log has wildcards {sorted(metered.wildcard_names)}, which "
                "common.smk's job_wildcards() does not list; add their values there"
            )
        logs += [apply_wildcards(pattern, combo) for combo in combos]
    return logs
