"""A tokenizer trained once per session on the demo's own documents (the config.yaml sources, read by the
data stage's reader, NFC-normalised as the data stage does), with a small vocabulary so it trains in
seconds. Shards: every 10th document of each language is validation, the rest train."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tessera.config import RunConfig, from_mapping
from tessera.data.filters import normalize_nfc
from tessera.data.plan import split_shards
from tessera.data.shards import ShardWriter, record
from tessera.data.sources import read_documents
from tessera.tokenizer.train import train_tokenizer

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"


def tiny_config(results_dir: Path, **tokenizer_keys) -> RunConfig:
    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    raw = copy.deepcopy(raw)
    raw["run"] = {"name": "tok", "seed": 1234, "results_dir": str(results_dir)}
    raw["tokenizer"] = {
        "vocab_size": 1024,
        "sample_bytes": 600_000,
        "balance_rounds": 1,
        "reference": {"gpt2": str(SHARED / "tokenizers/gpt2/gpt2.json"), "mistral": "mistral-common"},
        "flores_dir": str(SHARED / "eval/flores200"),
        **tokenizer_keys,
    }
    return from_mapping(raw)


def write_demo_shards(cfg: RunConfig) -> dict[str, list[str]]:
    """The demo sources' documents as train/validation shards; returns every text per language."""
    texts: dict[str, list[str]] = {}
    for source in cfg.data.sources:
        texts.setdefault(source.language, []).extend(
            normalize_nfc(d.text) for d in read_documents(cfg, source)
        )
    for lang, docs in texts.items():
        for split, keep in (("train", lambda i: i % 10 != 9), ("validation", lambda i: i % 10 == 9)):
            paths = split_shards(cfg, lang, split)  # the demo cuts each language into shards
            for part, path in enumerate(paths):
                path.parent.mkdir(parents=True, exist_ok=True)
                with ShardWriter(path, level=3) as writer:
                    for i, text in enumerate(docs):
                        if keep(i) and i % len(paths) == part:
                            writer.write(record(f"demo/{i}", "demo", lang, None, text))
    return texts


@pytest.fixture(scope="session")
def make_tiny_run():
    """make_tiny_run(results_dir, **tokenizer_keys) -> (RunConfig, texts) with demo shards written."""

    def build(results_dir: Path, **tokenizer_keys) -> tuple[RunConfig, dict[str, list[str]]]:
        cfg = tiny_config(results_dir, **tokenizer_keys)
        return cfg, write_demo_shards(cfg)

    return build


@pytest.fixture(scope="session")
def demo_texts(tmp_path_factory) -> tuple[RunConfig, dict[str, list[str]]]:
    cfg = tiny_config(tmp_path_factory.mktemp("tokenizer"))
    return cfg, write_demo_shards(cfg)


@pytest.fixture(scope="session")
def trained(demo_texts) -> tuple[RunConfig, dict[str, list[str]]]:
    cfg, texts = demo_texts
    train_tokenizer(cfg)
    return cfg, texts
