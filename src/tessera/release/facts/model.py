"""The released model (Annex XI 1.1(d)-(e), 1.2(b); Annex XII 1(f)-(g), 2(b)): shape, parameters, the
context it was trained at and the most it accepts, modalities, the published weights, the tokenizer."""

from __future__ import annotations

import csv
from typing import Any

from tessera.layout import RunLayout
from tessera.model.config import num_active_params, num_params
from tessera.release.facts.basis import fact, table
from tessera.release.facts.inputs import Facts

__all__ = ["properties", "weights", "tokenizer", "trained_context", "ISO_639_1"]

# ISO 639-3 (tessera's language codes) -> ISO 639-1 (the Hub's `language:` metadata).
ISO_639_1 = {
    "ita": "it", "eng": "en", "fra": "fr", "deu": "de", "spa": "es", "por": "pt",
    "cat": "ca", "nld": "nl", "pol": "pl", "ron": "ro", "slv": "sl", "hrv": "hr",
}  # fmt: skip

_TEXT_ONLY = "tessera.model: a text-only decoder over byte-level BPE tokens"


def _shape(facts: Facts) -> str:
    m = facts.model_cfg
    moe = m.moe
    return (
        f"decoder-only Mixture-of-Experts transformer, {m.num_layers} layers "
        f"({m.num_moe_layers} MoE), d_model {m.d_model}, {m.num_heads} query / {m.num_kv_heads} "
        f"key-value heads of {m.head_dim}, {moe.num_experts} routed experts of hidden size "
        f"{moe.expert_hidden} with top-{moe.top_k} {moe.router} routing"
        + (f", {moe.num_shared_experts} shared expert" if moe.num_shared_experts else "")
        + ", SwiGLU, RoPE, RMSNorm"
        + (", QK-norm" if m.qk_norm else "")
    )


def trained_context(facts: Facts) -> int:
    """The longest sequence any stage trained on (the loader packs every sequence to its stage's seq_len)."""
    return max(stage.seq_len for stage in facts.cfg.train.stages)


def _modalities() -> dict[str, dict]:
    return {
        "input_modalities": fact("Input modalities", ["text"], "computed", _TEXT_ONLY),
        "output_modalities": fact("Output modalities", ["text"], "computed", _TEXT_ONLY),
        "io_format": fact(
            "Format of inputs and outputs",
            "input: UTF-8 text, tokenized by the shipped tokenizer.json; output: a next-token distribution "
            "over the vocabulary, decoded back to UTF-8 text",
            "computed",
            _TEXT_ONLY,
        ),
    }


def properties(facts: Facts, hf_architecture: str) -> dict[str, dict]:
    src = facts.checkpoint_src
    trained = trained_context(facts)
    return {
        "architecture": fact(
            "Architecture", _shape(facts), "declared", f"{src}: model (config model.preset, model.overrides)"
        ),
        "hf_architecture": fact(
            "transformers class", hf_architecture, "computed", "config.json of the export (tessera.model.hf)"
        ),
        "total_parameters": fact(
            "Total parameters",
            num_params(facts.model_cfg),
            "computed",
            f"{src}: model",
            unit="parameters",
            method="tessera.model.config.num_params",
        ),
        "active_parameters": fact(
            "Active parameters per token",
            num_active_params(facts.model_cfg),
            "computed",
            f"{src}: model",
            unit="parameters",
            method="tessera.model.config.num_active_params (top-k routed experts)",
        ),
        "context_length": fact(
            "Context length trained",
            trained,
            "declared",
            "config train.stages[*].seq_len (the longest)",
            unit="tokens",
            method="every training sequence is packed to exactly its stage's seq_len",
        ),
        "max_context_length": fact(
            "Maximum input size accepted",
            facts.model_cfg.max_seq_len,
            "declared",
            f"{src}: model.max_seq_len (config model.preset, model.overrides)",
            unit="tokens",
            note=None
            if facts.model_cfg.max_seq_len <= trained
            else f"positions beyond {trained} were never trained: quality there is unknown",
        ),
        "vocab_size": fact(
            "Vocabulary size",
            facts.model_cfg.vocab_size,
            "measured",
            f"{src}: model.vocab_size",
            method="size of the trained tokenizer's vocabulary",
        ),
        **_modalities(),
        **weights(facts),
    }


def weights(facts: Facts) -> dict[str, dict]:
    """The published weights files: their dtype and sha256, measured from the exported files."""
    assert facts.weights, "weights are read from the export (tessera.release.facts.read_exported_weights)"  # noqa: S101 internal invariant, not input validation
    dtypes = sorted({d for w in facts.weights for d in w.dtypes})
    return {
        "weights_dtype": fact(
            "Weights dtype",
            ", ".join(dtypes),
            "measured",
            "safetensors headers of the exported weights",
            note=f"config release.dtype: {facts.cfg.release.dtype}",
        ),
        "weights_sha256": fact(
            "Weights sha256",
            "; ".join(f"{w.name} {w.sha256}" for w in facts.weights),
            "measured",
            "sha256 of the exported weights files (also in MANIFEST.sha256)",
        ),
        "weights_bytes": fact(
            "Weights size",
            sum(w.num_bytes for w in facts.weights),
            "measured",
            "size of the exported weights files",
            unit="bytes",
        ),
    }


def tokenizer(facts: Facts) -> dict[str, Any]:
    """Our tokenizer's fertility per dataset and language, from the tokenizer report."""
    from tessera.tokenizer.report import OURS

    path = RunLayout(facts.cfg.out_dir).reports_dir / "tokenizer.csv"
    if not path.is_file():
        return fact(
            "Tokenizer fertility",
            None,
            "measured",
            "reports/tokenizer.csv",
            note="absent: build it with snakemake tokenizer_report",
        )
    with path.open(encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["tokenizer"] == OURS]
    numbers = ("tokens_per_word", "bytes_per_token", "parity_ratio")
    return table(
        "Tokenizer fertility",
        f"reports/tokenizer.csv: rows of tokenizer {OURS}",
        [{**r, **{k: float(r[k]) if r[k] else None for k in numbers}} for r in rows],
        ("dataset", "Dataset", "declared"),
        ("language", "Language", "declared"),
        ("tokens_per_word", "Tokens per word", "measured"),
        ("bytes_per_token", "Bytes per token", "measured"),
        ("parity_ratio", "Parity (worst / best language)", "computed"),
    )
