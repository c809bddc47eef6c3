"""Score one checkpoint: bits per byte and perplexity per language, then the configured lm-eval tasks.

Writes `eval/<stage>/step-<N>.json` (format in docs/architecture.md). A checkpoint that cannot be loaded
raises CheckpointError naming its folder: the job fails (exit 1) and writes nothing, so Snakemake never
takes a failed evaluation for a result; `snakemake --keep-going` still runs every other evaluation.
Absent task data is not a failure: the task is listed under "skipped" and the other scores are written.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tessera.data.tokens import open_token_file
from tessera.errors import CheckpointError
from tessera.eval.intrinsic import gaps_to_best, score_token_file
from tessera.eval.tasks import hf_environment, run_tasks
from tessera.io import write_json
from tessera.layout import RunLayout
from tessera.preflight import check_eval_context

if TYPE_CHECKING:
    from tessera.config import RunConfig
    from tessera.model.transformer import Transformer

__all__ = ["evaluate_checkpoint", "resolve_device"]

log = logging.getLogger(__name__)


def resolve_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def _intrinsic(cfg: RunConfig, model: Transformer, tokenizer: Any, device: torch.device) -> dict:
    """Bits per byte, perplexity and the gap to the best language on every language's test split."""
    layout = RunLayout(cfg.out_dir)
    context_length = check_eval_context(cfg.eval, model.cfg)
    scores = {}
    for lang in cfg.data.languages:
        token_file = open_token_file(layout.tokens(lang, "test"))
        if token_file.num_documents == 0:
            log.warning("%s: no test documents; no intrinsic score for %s", token_file.stem, lang)
            continue
        score = score_token_file(
            lambda ids_BT: model(ids_BT).logits_BTV,
            token_file,
            decode=tokenizer.decode,
            context_length=context_length,
            max_tokens=cfg.eval.max_tokens_per_language,
            batch_size=cfg.eval.batch_size,
            device=device,
        )
        scores[lang] = score.as_dict()
        log.info("%s: %.4f bits/byte, perplexity %.2f", lang, score.bits_per_byte, score.perplexity)
    if scores:
        gaps = gaps_to_best({lang: s["bits_per_byte"] for lang, s in scores.items()})
        for lang, gap in gaps.items():
            scores[lang]["gap_to_best"] = gap
    return scores


def _load_hf_model(checkpoint_dir: Path, export_dir: Path, device: torch.device) -> tuple[Any, Any]:
    """The checkpoint as a transformers model (exported to `export_dir`) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tessera.model.hf import export_hf

    export_hf(checkpoint_dir, export_dir)
    model = AutoModelForCausalLM.from_pretrained(export_dir, trust_remote_code=False).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(export_dir, trust_remote_code=False)
    return model, tokenizer


def evaluate_checkpoint(cfg: RunConfig, checkpoint_dir: Path, out_path: Path) -> dict:
    """Score `checkpoint_dir` and write the result to `out_path`; returns the result."""
    # Compute jobs read the dataset cache that `cache_eval_datasets` filled, offline.
    with hf_environment(cfg, offline=True):
        return _evaluate(cfg, Path(checkpoint_dir), Path(out_path))


def _evaluate(cfg: RunConfig, checkpoint_dir: Path, out_path: Path) -> dict:
    from transformers import AutoTokenizer

    from tessera.model.checkpoint import load_checkpoint

    device = resolve_device(cfg.eval.device)
    started = time.perf_counter()
    model, meta = load_checkpoint(checkpoint_dir, device=device)
    model.eval()
    from tessera.model.hf import refuse_custom_code

    refuse_custom_code(checkpoint_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"{checkpoint_dir}: no loadable tokenizer ({err}); a published checkpoint carries its tokenizer "
            "files: re-publish it"
        ) from None
    intrinsic = _intrinsic(cfg, model, tokenizer, device)
    intrinsic_s = time.perf_counter() - started
    # One copy of the weights at a time: a 7B model in two layouts would crowd a 64 GB GPU.
    max_length = model.cfg.max_seq_len
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()

    tasks_started = time.perf_counter()
    result_tasks, skipped, errors = {}, [], []
    if cfg.eval.tasks:
        from lm_eval.models.huggingface import HFLM

        # Next to the result, not in /tmp: a 7B export is ~14 GB, more than a compute node's /tmp may hold.
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".hf-export-", dir=out_path.parent) as export_dir:
            hf_model, hf_tokenizer = _load_hf_model(checkpoint_dir, Path(export_dir), device)
            lm = HFLM(pretrained=hf_model, tokenizer=hf_tokenizer, batch_size=cfg.eval.batch_size,
                      max_length=max_length)
            outcome = run_tasks(lm, cfg)
        result_tasks, skipped, errors = outcome.scores, outcome.skipped, outcome.errors
    result = {
        "stage": meta["stage"],
        "step": meta["step"],
        "tokens_seen": meta["tokens_seen"],
        "checkpoint": str(checkpoint_dir),
        "intrinsic": intrinsic,
        "tasks": result_tasks,
        "skipped": skipped,
        "errors": errors,
        "device": str(device),
        "seconds": {"intrinsic": intrinsic_s, "tasks": time.perf_counter() - tasks_started},
    }
    write_json(out_path, result)
    return result
