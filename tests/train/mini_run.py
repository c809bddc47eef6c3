"""A miniature run for the training tests: random token files for two languages, a tokenizer file, and a
config layered over the repository's config.yaml (the `debug` model, tiny stages, one thread per rank)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from tessera.data.tokens import write_token_file
from tessera.layout import RunLayout
from tessera.parallel.dist import free_port

REPO = Path(__file__).resolve().parents[2]
VOCAB = 256
LANGUAGES = ("ita", "eng")


def write_mini_run(root: Path, tokenizer_text: str = '{"model": "mini"}') -> RunLayout:
    """Token files whose ids follow a learnable pattern (a per-language affine walk), so the loss falls."""
    layout = RunLayout(root)
    layout.tokenizer_dir.mkdir(parents=True, exist_ok=True)
    (layout.tokenizer_dir / "tokenizer.json").write_text(tokenizer_text)
    rng = np.random.default_rng(0)
    for offset, lang in enumerate(LANGUAGES):
        docs = []
        for _ in range(60):
            start, length = int(rng.integers(2, VOCAB)), int(rng.integers(20, 80))
            docs.append([int(2 + (start + 7 * i + offset) % (VOCAB - 2)) for i in range(length)])
        meta = {"vocab_size": VOCAB, "tokenizer_sha256": "mini", "eos_id": 1, "language": lang,
                "split": "train"}
        with write_token_file(layout.tokens(lang, "train"), meta) as writer:
            writer.add_documents(docs)
    return layout


def mini_config(results_dir: Path, **train) -> dict:
    """Stage s1: 24 steps of 8 x 64 tokens (4 micro-batches of 2 on one rank, 2 on each of two),
    checkpoints at 12 and 24, run states every 4 steps; stage s2: 4 steps decaying to zero."""
    section = {
        "micro_batch_size": 2, "zero_stage": 2, "expert_parallel_size": 1, "checkpoint_every": 12,
        "save_state_every": 4, "log_every": 4, "num_threads": 1, "local_processes": 1,
        "stages": [
            {"name": "s1", "steps": 24, "seq_len": 64, "batch_size": 8, "mixture": {"ita": 0.7, "eng": 0.3},
             "lr": {"peak": 1e-2, "warmup_steps": 2}},
            {"name": "s2", "steps": 4, "seq_len": 64, "batch_size": 8, "mixture": {"ita": 1.0},
             "lr": {"peak": 1e-2, "decay": "linear"}},
        ],
    }
    section.update(train)
    return {"run": {"name": "mini", "results_dir": str(results_dir)}, "model": {"preset": "debug"},
            "train": section, "energy": {"codecarbon": False}}


def make_mini_run(directory: Path, **train) -> tuple[Path, RunLayout]:
    """(config file, layout) of a fresh miniature run under `directory`."""
    layout = write_mini_run(directory / "results" / "mini")
    config = directory / "mini.yaml"
    config.write_text(yaml.safe_dump(mini_config(directory / "results", **train)))
    return config, layout


def tessera_cmd(config: Path, *args: str) -> list[str]:
    """`tessera --config config.yaml --config <mini> ...` in one process (two-rank tests start ranks as
    srun does, with SLURM variables)."""
    configs = ["--config", str(REPO / "config.yaml"), "--config", str(config)]
    return [sys.executable, "-m", "tessera.cli", *configs, *args]


TEST_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def run_tessera(config: Path, *args: str, timeout: float = 180,
                check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(tessera_cmd(config, *args), cwd=REPO, env=TEST_ENV,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def srun_like(config: Path, *args: str, ntasks: int, logs: Path) -> list[subprocess.Popen]:
    """The ranks as `srun` starts them: SLURM's variables only (no RANK/WORLD_SIZE); the rendezvous
    address comes from the node list. (The workflow's default launcher, tessera.parallel.launch, is
    covered by tests/parallel/test_launch.py and the demo workflow test.) Output goes to files: a full
    pipe would stall a rank inside a collective."""
    base = {k: v for k, v in TEST_ENV.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    base.update(SLURM_NTASKS=str(ntasks), SLURM_STEP_ID="0", SLURM_JOB_ID="4242",
                SLURM_JOB_NODELIST="localhost", MASTER_PORT=str(free_port()))
    ranks = []
    for r in range(ntasks):
        env = {**base, "SLURM_PROCID": str(r), "SLURM_LOCALID": str(r)}
        with open(logs / f"rank{r}.log", "w") as out:  # the child keeps its own copy of the descriptor
            ranks.append(subprocess.Popen(tessera_cmd(config, *args), cwd=REPO, stdout=out,
                                          stderr=subprocess.STDOUT, env=env))
    return ranks


def wait_ranks(ranks: list[subprocess.Popen], logs: Path, timeout: float = 300) -> str:
    """Rank 0's log once every rank exited 0 (else an AssertionError with the logs)."""
    codes = [rank.wait(timeout=timeout) for rank in ranks]
    texts = [(logs / f"rank{r}.log").read_text() for r in range(len(ranks))]
    assert codes == [0] * len(ranks), "\n".join(t[-3000:] for t in texts)
    return texts[0]
