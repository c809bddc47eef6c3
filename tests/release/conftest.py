"""A finished run in miniature for the release tests, built with the other areas' own writers: a tiny BPE
tokenizer, `debug` checkpoints at the end of each demo stage (tessera.model.checkpoint), the data manifest
(tessera.data.manifest.build_manifest over synthetic counts), per-checkpoint evaluation results turned into
reports/eval.json by tessera.eval.report, and energy records as the meter writes them turned into
reports/energy.json by tessera.energy.report. Built once per session; each test gets its own copy."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from tessera.config import RunConfig, from_mapping
from tessera.data.manifest import SourceStats, build_manifest
from tessera.energy.records import RECORD_SCHEMA
from tessera.energy.report import build_summary, load_jobs, training_flops
from tessera.eval.report import write_report as write_eval_report
from tessera.io import write_json, write_text
from tessera.layout import RunLayout, checkpoint_steps

REPO = Path(__file__).resolve().parents[2]
EOS = "<|endoftext|>"
TEXTS = [
    "In principio Iddio creò il cielo e la terra.",
    "In the beginning God created the heaven and the earth.",
    "Au commencement, Dieu créa les cieux et la terre.",
    "Am Anfang schuf Gott Himmel und Erde.",
    "En el principio creó Dios los cielos y la tierra.",
]
RELEASE = {
    "model_name": "tessera-test",
    "version": "0.0.1",
    "license": "apache-2.0",
    "provider": "Tessera Test Consortium",
    "contact": "release@example.org",
    "intended_use": "Research on multilingual language modelling.",
    "content_types": ["religious text (public-domain Bible translations)"],
    "placed_on_market": "2026-01-15",
}
GPU_J_PER_STEP = 1000.0
LEONARDO = {"name": "leonardo", "country": "ITA", "pue": 1.1, "gpu_type": "A100-64GB"}
"""The site of every job of the miniature run (its config's site, as configs/leonardo.yaml)."""


def raw_config(results_dir: Path) -> dict:
    raw = copy.deepcopy(yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8")))
    raw["run"] = {"name": "reltest", "seed": 1, "results_dir": str(results_dir)}
    raw["site"] = {"name": "leonardo", "country": "ITA", "pue": 1.1, "gpu_type": "A100-64GB"}
    # Positions up to 256, trained at 128 (config.yaml's stages): the documents must tell the two apart.
    raw["model"] = {"preset": "debug", "overrides": {"max_seq_len": 256}}
    raw["release"] = dict(RELEASE)
    return raw


def _tokenizer(out: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(TEXTS, trainer)
    PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token=EOS, bos_token=EOS, pad_token=EOS
    ).save_pretrained(out)
    return out


def _checkpoints(cfg: RunConfig, tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    from tessera.model.checkpoint import save_checkpoint
    from tessera.model.config import build_model_config
    from tessera.model.transformer import Transformer

    layout = RunLayout(cfg.out_dir)
    model_cfg = build_model_config(cfg.model, len(AutoTokenizer.from_pretrained(tokenizer_dir)))
    tokens_seen = 0
    for index, stage in enumerate(cfg.train.stages):
        tokens_seen += stage.num_steps * stage.tokens_per_step
        torch.manual_seed(index)
        meta = {"stage": stage.name, "step": stage.num_steps, "tokens_seen": tokens_seen}
        save_checkpoint(
            layout.checkpoint(stage.name, stage.num_steps), Transformer(model_cfg), meta, tokenizer_dir
        )


def _manifest(cfg: RunConfig) -> None:
    stats = {}
    for index, source in enumerate(cfg.data.sources):
        s = SourceStats(inputs=[{"path": source.path, "bytes": 1000, "sha256": "0" * 64}])
        s.documents_in, s.bytes_in = 200, 400_000 + index
        s.dropped["exact_duplicate"] = index
        s.dropped["quality_too_short"] = 1
        s.pii_redactions["email"] = index + 1
        s.cleanup["nfc_changed"] = 3
        kept = 200 - index - 1
        for i in range(kept):
            s.kept("test" if i % 20 == 0 else "train", 1900 + index)
        stats[source.name] = s
    write_json(RunLayout(cfg.out_dir).manifest, build_manifest(cfg, stats))


def _eval(cfg: RunConfig) -> None:
    layout = RunLayout(cfg.out_dir)
    index = 0
    for stage in cfg.train.stages:
        for step in checkpoint_steps(stage.num_steps, cfg.train.checkpoint_every):
            bpb = {lang: 3.0 - 0.1 * index - 0.01 * i for i, lang in enumerate(cfg.data.languages)}
            best = min(bpb.values())
            write_json(
                layout.eval_result(stage.name, step),
                {
                    "stage": stage.name,
                    "step": step,
                    "tokens_seen": 1000 * (index + 1),
                    "checkpoint": str(layout.checkpoint(stage.name, step)),
                    "intrinsic": {
                        lang: {
                            "bits_per_byte": v,
                            "perplexity": 2.0**v,
                            "gap_to_best": v - best,
                            "num_tokens": 100,
                            "num_bytes": 400,
                            "num_documents": 2,
                        }
                        for lang, v in bpb.items()
                    },
                    "tasks": {
                        "tessera_xcopa_it": {
                            "acc": 0.5 + 0.01 * index,
                            "acc_stderr": 0.05,
                            "num_samples": 100,
                        }
                    },
                    "skipped": [{"task": "tessera_belebele_ita", "reason": "data absent"}],
                    "errors": [],
                    "device": "cpu",
                    "seconds": {"intrinsic": 1.0, "tasks": 1.0},
                },
            )
            index += 1
    write_eval_report(cfg)


def _record(job: str, start: float, time_s: float, gpu_j: float, cpu_j: float, site: dict) -> dict:
    """One rank's record as tessera.energy.meter writes it: GPU measured by NVML, CPU estimated."""
    return {
        "schema": RECORD_SCHEMA,
        "job": job,
        "label": job.split("-")[0],
        "status": "ok",
        "invocation": f"inv-{job}",
        "node": "lrdn0001",
        "rank": 0,
        "local_rank": 0,
        "world_size": 1,
        "start_unix": start,
        "end_unix": start + time_s,
        "time_s": time_s,
        "gpu": {
            "j": gpu_j,
            "kind": "measured" if gpu_j else "none",
            "method": "NVML counter",
            "devices": [{"index": 0, "uuid": "GPU-0", "name": "A100", "j": gpu_j, "kind": "measured"}]
            if gpu_j
            else [],
        },
        "cpu": {"j": cpu_j, "kind": "estimated", "method": "CodeCarbon"},
        "mem": {"j": cpu_j / 4, "kind": "estimated", "method": "CodeCarbon"},
        "codecarbon": None,
        "site": dict(site),
        "slurm": None,
        "samples": {"t_s": [0.0, time_s], "gpu_w": [0.0, 0.0], "cpu_w": [0.0, 0.0]},
    }


def write_energy(cfg: RunConfig, site_of=lambda job: LEONARDO) -> None:
    """The jobs' energy records, each at `site_of(job)`, and reports/energy.json built from them."""
    layout = RunLayout(cfg.out_dir)
    start = 1_800_000_000.0
    # train_tokenizer shares the "train" prefix but is no training job: the compute facts must leave it out.
    jobs = [("prepare_data", 0.0), ("train_tokenizer", 0.0)]
    for stage in cfg.train.stages:
        previous = 0
        for step in checkpoint_steps(stage.num_steps, cfg.train.checkpoint_every):
            jobs.append((f"train-{stage.name}-{step:06d}", (step - previous) * GPU_J_PER_STEP))
            previous = step
    for job, gpu_j in jobs:
        write_text(
            layout.energy_dir / f"{job}.jsonl",
            json.dumps(_record(job, start, 60.0, gpu_j, 500.0, site_of(job))) + "\n",
        )
        start += 60.0
    summary = build_summary(
        cfg, load_jobs(layout.energy_dir), {}, [], training_flops(cfg, layout), query_sacct=False
    )
    summary.write(layout.reports_dir / "energy.json")


def _tokenizer_report(cfg: RunConfig) -> None:
    """reports/tokenizer.csv as tessera.tokenizer.report writes it: ours and a reference per language."""
    from tessera.tokenizer.report import CSV_FIELDS, OURS

    lines = [",".join(CSV_FIELDS)]
    for i, lang in enumerate(cfg.data.languages):
        for name, fertility in ((OURS, 1.5 + 0.01 * i), ("gpt2", 2.5 + 0.1 * i)):
            lines.append(f"validation,{name},{lang},{fertility},{4.0 - 0.1 * i},1500,1000,6000,1.04")
    write_text(RunLayout(cfg.out_dir).reports_dir / "tokenizer.csv", "\n".join(lines) + "\n")


def load_config(results_dir: Path, **release) -> RunConfig:
    """The run's config, also written beside the results (`cfg.source`) for the CLI."""
    raw = raw_config(results_dir)
    raw["release"].update(release)
    source = results_dir.parent / "config.yaml"
    source.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return from_mapping(raw, source)


@pytest.fixture(scope="session")
def run_template(tmp_path_factory) -> Path:
    """The results dir of a finished miniature run (do not modify: copy it with `release_run`)."""
    results = tmp_path_factory.mktemp("release-run") / "results"
    cfg = load_config(results)
    tokenizer_dir = _tokenizer(RunLayout(cfg.out_dir).tokenizer_dir)
    _checkpoints(cfg, tokenizer_dir)
    _manifest(cfg)
    _tokenizer_report(cfg)
    _eval(cfg)
    write_energy(cfg)
    return results


@pytest.fixture
def release_run(run_template, tmp_path):
    """`release_run(**release_keys)` -> RunConfig over a fresh copy of the finished run."""

    def make(**release) -> RunConfig:
        results = tmp_path / "results"
        if not results.exists():
            shutil.copytree(run_template, results)
        return load_config(results, **release)

    return make


@pytest.fixture(scope="session")
def built_release(run_template, tmp_path_factory) -> RunConfig:
    """A run whose release folder is built (shared by the tests that only read it)."""
    from tessera.release.build import build_release

    results = tmp_path_factory.mktemp("built") / "results"
    shutil.copytree(run_template, results)
    cfg = load_config(results)
    build_release(cfg)
    return cfg


def documents_of(cfg: RunConfig) -> dict[str, dict]:
    """The four documents of `cfg`'s run as the release builds them, weights exported beside the results."""
    from tessera.model.hf import export_hf
    from tessera.release.documents import build_documents
    from tessera.release.facts import gather_facts, read_exported_weights

    facts = gather_facts(cfg)
    export = cfg.out_dir.parent / "export"
    if not export.is_dir():
        export_hf(facts.checkpoint, export)
    read_exported_weights(facts, export)
    return build_documents(facts, "Qwen3MoeForCausalLM")
