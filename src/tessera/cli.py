"""`tessera <verb>`: parse arguments, load the config once, call one function.

Global options come before the verb:
    tessera --config config.yaml [--config site.yaml] [--set train.lr=1e-3] [--energy-out F] <verb> ...
Several --config files are deep-merged in order (as Snakemake merges --configfile); --set applies last.
With --energy-out, the verb runs inside an energy meter that appends its record to that JSONL file.
"""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import nullcontext
from pathlib import Path

from tessera.config import RunConfig, load
from tessera.errors import ConfigError, PreemptedError, TesseraError

__all__ = ["main", "EXIT_PREEMPTED"]

EXIT_PREEMPTED = 75
"""Exit code after a signal-triggered save (EX_TEMPFAIL): Snakemake's retry resubmits and training resumes."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tessera", description=__doc__.split("\n")[0])
    p.add_argument("--config", type=Path, action="append", help="YAML config (repeatable; merged in order)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--energy-out", type=Path, help="append this job's energy record to this JSONL file")
    p.add_argument("--energy-label", help="job name in the energy log (default: the verb)")
    verbs = p.add_subparsers(dest="verb", required=True)
    # In this order: it is the order of `tessera --help`.
    _add_data_verbs(verbs)
    _add_training_verbs(verbs)
    _add_release_verbs(verbs)
    _add_planning_verbs(verbs)
    return p


def _add_data_verbs(verbs) -> None:
    """data, tokenizer, tokenize: sources -> shards -> tokenizer -> token files."""
    data = verbs.add_parser("data", help="data stage").add_subparsers(dest="action", required=True)
    prepare = data.add_parser("prepare", help="sources -> filtered, deduplicated, split shards + manifest")
    prepare.add_argument("--workers", type=int, default=1, help="processes for the shards and band groups")
    # The same stages one job at a time (workflow/rules/data.smk; tessera.data.scatter).
    shard = data.add_parser("shard", help="per-document filters and dedup keys of one prepare shard")
    shard.add_argument("--language", required=True)
    shard.add_argument("--part", type=int, required=True)
    pairs = data.add_parser("pairs", help="confirmed duplicate pairs of one group of LSH bands")
    pairs.add_argument("--language", required=True)
    pairs.add_argument("--group", type=int, required=True)
    removals = data.add_parser("removals", help="duplicate clusters -> the language's removal list")
    removals.add_argument("--language", required=True)
    write = data.add_parser("write", help="one shard's documents minus removals -> split shards")
    write.add_argument("--language", required=True)
    write.add_argument("--part", type=int, required=True)
    data.add_parser("manifest", help="merge every shard's counts into data/manifest.json")
    fetch = data.add_parser("fetch", help="download one hub source into the cache (login node)")
    fetch.add_argument("--source", required=True)

    tok = verbs.add_parser("tokenizer", help="tokenizer").add_subparsers(dest="action", required=True)
    tok.add_parser("train", help="fit the BPE tokenizer on the training split")
    tok.add_parser("report", help="fertility report against reference tokenizers")

    tokenize = verbs.add_parser("tokenize", help="encode one prepare shard, or index a language's shards")
    tokenize.add_argument("--language", required=True)
    what = tokenize.add_mutually_exclusive_group(required=True)
    what.add_argument("--part", type=int, help="the prepare shard whose splits to encode")
    what.add_argument("--index", action="store_true", help="index the language's token shards per split")
    tokenize.add_argument("--threads", type=int, help="cores to encode with (default: the CPU affinity)")


def _add_training_verbs(verbs) -> None:
    """train, state, eval, energy: training, its run states, and the reports on it."""
    train = verbs.add_parser("train", help="train one stage up to a step (resumes from its run state)")
    train.add_argument("--stage", required=True)
    train.add_argument("--until-step", type=int, help="publish the checkpoint at this step and stop")

    state = verbs.add_parser("state", help="run states").add_subparsers(dest="action", required=True)
    verify = state.add_parser("verify", help="check the sha256 manifests of run states and checkpoints")
    verify.add_argument("paths", type=Path, nargs="+", help="folders: a run's results, state/, train/, ...")

    ev = verbs.add_parser("eval", help="evaluate checkpoints")
    ev_actions = ev.add_subparsers(dest="action", required=True)
    ev_ckpt = ev_actions.add_parser("checkpoint", help="score one checkpoint")
    ev_ckpt.add_argument("--checkpoint", type=Path, required=True)
    ev_ckpt.add_argument("--out", type=Path, required=True)
    ev_actions.add_parser("report", help="eval JSON -> reports/eval.{md,csv,json,png}")
    ev_cache = ev_actions.add_parser("cache-datasets", help="download upstream lm-eval datasets (login node)")
    ev_cache.add_argument("--stamp", type=Path, required=True, help="file written when the cache is complete")

    energy = verbs.add_parser("energy", help="energy").add_subparsers(dest="action", required=True)
    energy.add_parser("report", help="energy logs -> reports/energy.{md,csv,png}")


def _add_release_verbs(verbs) -> None:
    """export-hf, import-hf, release: checkpoints to and from transformers, and the release folder."""
    export = verbs.add_parser("export-hf", help="tessera checkpoint -> transformers folder")
    export.add_argument("--checkpoint", type=Path, required=True)
    export.add_argument("--out", type=Path, required=True)
    imp = verbs.add_parser("import-hf", help="transformers MoE folder -> tessera checkpoint")
    imp.add_argument("--hf-dir", type=Path, required=True)
    imp.add_argument("--out", type=Path, required=True)

    verbs.add_parser("release", help="write the release folder")


def _add_planning_verbs(verbs) -> None:
    """plan, budget, calibrate, model info: sizing a run against an allocation."""
    plan = verbs.add_parser("plan", help="node-hours -> model, tokens, nodes, energy, CO2e (plan.{md,json})")
    plan.add_argument("--site", required=True, help="configs/<site>.yaml and profiles/<site>/, e.g. leonardo")
    plan.add_argument("--node-hours", type=float, required=True, help="the allocation, node-hours")
    plan.add_argument("--days", type=float, default=60.0, help="the allocation's duration (default 60)")
    plan.add_argument("--nodes", type=int, help="training nodes (default: enough to finish in --days)")
    plan.add_argument("--shapes", help="comma-separated shapes to plan (default: run and every candidate)")
    plan.add_argument("--shape", help="the shape the overlay trains (default: lowest Chinchilla loss)")
    plan.add_argument("--mfu", type=float, help="assumed MFU where not calibrated (default 0.35)")
    plan.add_argument("--out", type=Path, help="folder for plan.md, plan.json, overlay.yaml (default: plan/)")
    verbs.add_parser("budget", help="node-hours and energy spent against the allocation, and the projection")
    cal = verbs.add_parser("calibrate", help="a few training steps per shape: tokens/s, MFU, W per GPU")
    cal.add_argument("--out", type=Path, help="calibration JSON (default: plan/calibration.json)")
    cal.add_argument("--shapes", help="comma-separated shapes (default: run; on a GPU, every candidate too)")
    cal.add_argument("--steps", type=int, default=3, help="timed steps per shape (after one warm-up)")

    model = verbs.add_parser("model", help="model").add_subparsers(dest="action", required=True)
    info = model.add_parser("info", help="parameters and FLOPs per token of a preset")
    info.add_argument("--preset", help="preset name (default: the config's)")


def _run_data_stage(args: argparse.Namespace, cfg: RunConfig) -> None:
    """One job of the scattered data stage (tessera.data.scatter), on the run's layout."""
    from tessera.data import scatter
    from tessera.data.plan import find_shard
    from tessera.layout import RunLayout

    _check_language(args, cfg)
    layout = RunLayout(cfg.out_dir)
    if args.action == "shard":
        scatter.filter_shard(cfg, find_shard(cfg, args.language, args.part), layout)
    elif args.action == "pairs":
        scatter.find_pairs(cfg, args.language, args.group, layout)
    elif args.action == "removals":
        scatter.find_removals(cfg, args.language, layout)
    elif args.action == "write":
        scatter.write_shard(cfg, find_shard(cfg, args.language, args.part), layout)
    else:
        from tessera.data.prepare import print_summary

        print_summary(cfg, scatter.write_manifest(cfg, layout), layout.data_dir)


def _run_verb(args: argparse.Namespace, cfg: RunConfig | None, meter) -> None:
    """Dispatch to one function; imports are local so that each verb pays only for what it uses."""
    if args.verb in ("data", "tokenizer", "tokenize"):
        _run_data_verb(args, cfg)
    elif args.verb in ("train", "state", "eval", "energy"):
        _run_training_verb(args, cfg, meter)
    elif args.verb in ("export-hf", "import-hf", "release"):
        _run_release_verb(args, cfg)
    elif args.verb in ("plan", "budget", "calibrate"):
        _run_plan_verb(args, cfg, meter)
    elif args.verb == "model" and args.action == "info":
        from tessera.model.config import print_info

        print_info(args.preset or cfg.model.preset, cfg)
    else:
        raise _unhandled(args)


def _unhandled(args: argparse.Namespace) -> AssertionError:
    # argparse guarantees a known verb; reaching here is a bug in the dispatch tables
    return AssertionError(f"unhandled verb {args.verb} {getattr(args, 'action', None)}")


def _run_data_verb(args: argparse.Namespace, cfg: RunConfig) -> None:
    verb, action = args.verb, getattr(args, "action", None)
    if verb == "data" and action == "prepare":
        from tessera.data.prepare import prepare_data

        prepare_data(cfg, workers=max(1, args.workers))
    elif verb == "data" and action in ("shard", "pairs", "removals", "write", "manifest"):
        _run_data_stage(args, cfg)
    elif verb == "data" and action == "fetch":
        from tessera.data.fetch import fetch_source

        fetch_source(cfg, args.source)
    elif verb == "tokenizer" and action == "train":
        from tessera.tokenizer.train import train_tokenizer

        train_tokenizer(cfg)
    elif verb == "tokenizer" and action == "report":
        from tessera.tokenizer.report import write_report

        write_report(cfg)
    elif verb == "tokenize":
        from tessera.data.tokenize import index_tokens, tokenize_shard

        _check_language(args, cfg)
        if args.index:
            index_tokens(cfg, args.language)
        else:
            tokenize_shard(cfg, args.language, args.part, num_threads=args.threads)
    else:
        raise _unhandled(args)


def _run_training_verb(args: argparse.Namespace, cfg: RunConfig | None, meter) -> None:
    verb, action = args.verb, getattr(args, "action", None)
    if verb == "train":
        from tessera.train.trainer import run_stage

        run_stage(cfg, args.stage, until_step=args.until_step, meter=meter)
    elif verb == "state" and action == "verify":
        from tessera.train.transfer import verify_paths

        verify_paths(args.paths)
    elif verb == "eval" and action == "checkpoint":
        from tessera.eval.evaluate import evaluate_checkpoint

        if args.out.is_dir():
            raise ConfigError(f"--out {args.out}: is a folder; give the result's file name (e.g. step.json)")
        evaluate_checkpoint(cfg, args.checkpoint, args.out)
    elif verb == "eval" and action == "report":
        from tessera.eval.report import write_report

        write_report(cfg)
    elif verb == "eval" and action == "cache-datasets":
        from tessera.eval.tasks import cache_datasets

        cache_datasets(cfg, args.stamp)
    elif verb == "energy" and action == "report":
        from tessera.energy.report import write_report

        write_report(cfg)
    else:
        raise _unhandled(args)


def _run_release_verb(args: argparse.Namespace, cfg: RunConfig | None) -> None:
    if args.verb == "export-hf":
        from tessera.model.hf import export_hf

        _check_new_folder("--out", args.out)
        export_hf(args.checkpoint, args.out)
    elif args.verb == "import-hf":
        from tessera.model.hf import import_hf

        _check_new_folder("--out", args.out)
        import_hf(args.hf_dir, args.out)
    else:
        from tessera.release.build import build_release

        build_release(cfg)


def _shape_list(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def _run_plan_verb(args: argparse.Namespace, cfg: RunConfig, meter) -> None:
    from tessera.layout import RunLayout

    layout = RunLayout(cfg.out_dir)
    if args.verb == "plan":
        from dataclasses import replace

        from tessera.plan.compute import Assumptions
        from tessera.plan.planner import make_plan
        from tessera.plan.render import write_plan
        from tessera.plan.site import site_record

        assumptions = Assumptions() if args.mfu is None else replace(Assumptions(), mfu=args.mfu)
        plan = make_plan(cfg, site_record(cfg, Path.cwd(), args.site), args.node_hours, args.days, args.nodes,
                         _shape_list(args.shapes), args.shape, layout.calibration, assumptions)
        out = args.out or layout.plan_dir
        print(write_plan(cfg, plan, out))
        print(f"wrote {out}/plan.md, plan.json, overlay.yaml")
    elif args.verb == "budget":
        from tessera.plan.budget import print_budget

        print_budget(cfg)
    else:
        from tessera.plan.calibrate import calibrate

        calibrate(cfg, args.out or layout.calibration, _shape_list(args.shapes), args.steps, meter)


def _check_choice(option: str, value: str, allowed, where: str) -> None:
    """A path-forming argument must be one the config declares (it becomes a folder name)."""
    if value not in allowed:
        raise ConfigError(f"{option} {value!r}: not one of {', '.join(allowed)} (from {where})")


def _check_language(args: argparse.Namespace, cfg: RunConfig) -> None:
    if getattr(args, "language", None) is not None:
        _check_choice("--language", args.language, cfg.data.languages, "data.sources[].language")


def _check_new_folder(option: str, path: Path) -> None:
    """The folder a verb writes whole must be new (or empty): it replaces what is there."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(
            f"{option} {path}: exists and is not empty, and would be replaced whole; give a new folder, or "
            "delete this one first if it is an earlier output"
        )


# Verbs that need no config file (they work on folders given as arguments).
_CONFIG_FREE = {"export-hf", "import-hf", "state"}


def _default_configs(args: argparse.Namespace) -> list[Path]:
    """config.yaml, and for `plan --site S` the site's preset configs/S.yaml layered over it."""
    if args.verb == "plan":
        from tessera.plan.site import site_config_files

        return site_config_files(Path.cwd(), args.site)
    return [Path("config.yaml")]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Progress of long verbs (tokenizer rounds, evaluation) goes to the job's log through `logging`.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        cfg = None
        if args.verb not in _CONFIG_FREE or args.config:
            cfg = load(args.config or _default_configs(args), args.overrides)
        meter_ctx = nullcontext(None)
        if args.energy_out is not None:
            from tessera.energy.meter import EnergyMeter

            label = args.energy_label or " ".join(filter(None, [args.verb, getattr(args, "action", None)]))
            meter_ctx = EnergyMeter.for_job(cfg, args.energy_out, label)
        with meter_ctx as meter:
            _run_verb(args, cfg, meter)
    except PreemptedError as err:
        print(f"tessera: {err}", file=sys.stderr)
        return EXIT_PREEMPTED
    except TesseraError as err:
        print(f"tessera: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
