"""The bad-input catalogue's tools: run `tessera` or `snakemake -n` as a user does, snapshot a folder's files,
and one miniature run (config, token files, a tokenizer file, checkpoints, a manifest, a transformers export)
built once per session with tessera's own functions, copied into each case's workspace."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
RUN = "h"
"""The miniature run's name: its outputs are in <workspace>/results/h/."""
STAGES = (("s1", 4), ("s2", 2))
"""(stage, steps): one published checkpoint per stage (checkpoint_every is larger than both)."""
VOCAB = 256


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it, the command that must refuse it, what the message must say."""

    name: str
    argv: tuple[str, ...]
    """`tessera` or `snakemake` arguments; {config}, {ws} and {out} are the case's config file, workspace
    and run folder."""
    expect: tuple[str, ...]
    """Regular expressions that must all be in the output: the file or key at fault, and the remedy."""
    edit: Callable[[dict], None] | None = None
    """Changes the miniature run's config mapping."""
    prepare: Callable[[Path], None] | None = None
    """Changes the run folder (results/h) before the command."""
    tool: str = "tessera"
    """'tessera' or 'snakemake' (then run in the workspace with -n)."""


@dataclass
class Outcome:
    returncode: int
    output: str


def run_tool(tool: str, argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> Outcome:
    """`python -m tessera ...` or `snakemake -s <repo>/Snakefile ...`, as a subprocess with a timeout."""
    if tool == "tessera":
        command = [sys.executable, "-m", "tessera", *argv]
    else:
        command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), *argv]
    proc = subprocess.run(command, cwd=cwd, env=env or dict(os.environ), capture_output=True, text=True,
                          timeout=300)
    return Outcome(proc.returncode, proc.stdout + proc.stderr)


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*")) if path.is_file()
    }


def assert_refused(outcome: Outcome, expect: tuple[str, ...]) -> None:
    """Non-zero exit, every expected phrase (file or key, remedy), and no Python traceback."""
    assert outcome.returncode != 0, f"accepted:\n{outcome.output[-3000:]}"
    assert "Traceback (most recent call last)" not in outcome.output, outcome.output[-4000:]
    assert not re.search(r'^\s+File "[^"]+", line \d+', outcome.output, flags=re.M), outcome.output[-4000:]
    for pattern in expect:
        assert re.search(pattern, outcome.output), f"{pattern!r} not in:\n{outcome.output[-3000:]}"


# ---- the miniature run --------------------------------------------------------------------------------


def demo_raw() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))


def mini_config(workspace: Path) -> dict:
    """The demo config with a debug model, two tiny stages on one rank and outputs in the workspace."""
    raw = demo_raw()
    raw["run"] = {"name": RUN, "seed": 1, "results_dir": str(workspace / "results")}
    raw["model"] = {"preset": "debug", "overrides": {}}
    raw["energy"]["codecarbon"] = False
    raw["train"] = {
        "micro_batch_size": 2, "zero_stage": 0, "expert_parallel_size": 1, "checkpoint_every": 50,
        "save_state_every": 2, "log_every": 2, "local_processes": 1, "num_threads": 1,
        "stages": [
            {"name": name, "steps": steps, "seq_len": 32, "batch_size": 4,
             "mixture": {"ita": 0.5, "eng": 0.5}}
            for name, steps in STAGES
        ],
    }
    raw["eval"]["tasks"] = []
    return raw


def _write_tokenizer(path: Path) -> None:
    """A tiny real byte-level BPE with tessera's special tokens (tokenize reads it; train hashes it)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from tessera.tokenizer.config import TokenizerConfig

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=TokenizerConfig().special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(["nel mezzo del cammin di nostra vita"] * 20, trainer)
    tokenizer.save(str(path))


def _write_tokens(layout) -> None:
    from tessera.data.tokens import write_token_file, write_token_index

    rng = np.random.default_rng(0)
    languages = [s["language"] for s in demo_raw()["data"]["sources"]]
    for lang in dict.fromkeys(languages):
        for split in ("train", "validation", "test"):
            docs = [rng.integers(2, VOCAB, size=int(rng.integers(20, 60))).tolist() for _ in range(20)]
            meta = {"vocab_size": VOCAB, "tokenizer_sha256": "mini", "eos_id": 1, "language": lang,
                    "split": split}
            # As the tokenize rules leave them: one token file set per prepare shard, indexed per split.
            shards = [layout.token_shard(lang, split, part) for part in range(2)]
            for part, stem in enumerate(shards):
                with write_token_file(stem, meta) as writer:
                    writer.add_documents(docs[part::2])
            write_token_index(layout.tokens(lang, split), shards)


def _write_checkpoints(layout) -> None:
    import torch

    from tessera.model.checkpoint import save_checkpoint
    from tessera.model.config import PRESETS
    from tessera.model.transformer import Transformer

    torch.manual_seed(0)
    model = Transformer(PRESETS["debug"])
    for stage, steps in STAGES:
        meta = {"stage": stage, "step": steps, "tokens_seen": steps * 4 * 32}
        save_checkpoint(layout.checkpoint(stage, steps), model, meta)


@pytest.fixture(scope="session")
def mini_template(tmp_path_factory) -> Path:
    """A workspace holding the miniature run's earlier outputs (results/h/...) and a transformers export
    (hf/). Built once; each case works on a copy."""
    from tessera.layout import RunLayout
    from tessera.model.hf import export_hf

    template = tmp_path_factory.mktemp("hardening-template")
    layout = RunLayout(template / "results" / RUN)
    layout.tokenizer_dir.mkdir(parents=True)
    _write_tokenizer(layout.tokenizer_dir / "tokenizer.json")
    _write_tokens(layout)
    _write_checkpoints(layout)
    layout.manifest.parent.mkdir(parents=True, exist_ok=True)
    layout.manifest.write_text(json.dumps({"sources": {}, "languages": {}}) + "\n")
    export_hf(layout.checkpoint(*STAGES[-1]), template / "hf")
    return template


@pytest.fixture
def workspace(mini_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the miniature run (results/h and hf/) for one case."""
    shutil.copytree(mini_template, tmp_path, dirs_exist_ok=True)
    return tmp_path


def write_case_config(workspace: Path, case: Case) -> Path:
    """The case's config file: the miniature config with the case's edit, as one YAML file."""
    raw = copy.deepcopy(mini_config(workspace))
    if case.edit is not None:
        case.edit(raw)
    path = workspace / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_case(case: Case, workspace: Path) -> Outcome:
    """Prepare the case, run its command, and check it was refused with no earlier output changed."""
    config = write_case_config(workspace, case)
    out = workspace / "results" / RUN
    if case.prepare is not None:
        case.prepare(out)
    before = snapshot(workspace / "results")
    argv = [arg.format(config=config, ws=workspace, out=out) for arg in case.argv]
    if case.tool == "snakemake":
        argv = ["-d", str(workspace), "-n", *argv]
    outcome = run_tool(case.tool, argv, REPO if case.tool == "tessera" else workspace)
    assert_refused(outcome, case.expect)
    assert snapshot(workspace / "results") == before, "an earlier output changed"
    return outcome
