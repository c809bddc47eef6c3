"""A demo-like run in miniature for the evaluation tests: a byte-level BPE tokenizer trained here, parallel
test token files for every configured language, and tessera checkpoints of the `debug` model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from tessera.config import RunConfig, RunSection, SiteConfig, from_dict
from tessera.data.config import DataConfig
from tessera.data.tokens import write_token_file
from tessera.eval.config import EvalConfig
from tessera.layout import RunLayout, checkpoint_steps
from tessera.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]

# The same two verses in each language, as the demo corpus is parallel.
PARALLEL = {
    "ita": ["In principio Iddio creò il cielo e la terra.", "E la terra era una cosa deserta e vacua."],
    "eng": ["In the beginning God created the heaven and the earth.", "And the earth was without form."],
    "fra": ["Au commencement, Dieu créa les cieux et la terre.", "La terre était informe et vide."],
    "deu": ["Am Anfang schuf Gott Himmel und Erde.", "Und die Erde war wüst und leer."],
    "spa": ["En el principio creó Dios los cielos y la tierra.", "Y la tierra estaba desordenada y vacía."],
}
EOS = "<|endoftext|>"


def texts_for(lang: str) -> list[str]:
    return PARALLEL.get(lang, PARALLEL["eng"])


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator([t for texts in PARALLEL.values() for t in texts], trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, bos_token=EOS, pad_token=EOS)
    out = tmp_path_factory.mktemp("tokenizer")
    tokenizer.save_pretrained(out)
    return out


def _make_config(results_dir: Path, **eval_section) -> RunConfig:
    """The demo's run, data and train sections (so its languages and stages) with this `eval:` section,
    and a checkpoint every half of the first stage. Sections evaluation never reads stay None, so that
    their owners' changes in progress don't break these tests."""
    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    train = from_dict(TrainConfig, raw["train"], "train")
    train.checkpoint_every = max(1, train.stages[0].num_steps // 2)
    return RunConfig(
        run=RunSection(name="evaltest", seed=raw["run"]["seed"], results_dir=results_dir),
        site=SiteConfig(),
        data=from_dict(DataConfig, raw["data"], "data"),
        train=train,
        tokenizer=None, model=None, energy=None, release=None,
        eval=from_dict(EvalConfig, eval_section, "eval"),
        source=REPO / "config.yaml",
    )


def write_test_tokens(cfg: RunConfig, tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    layout = RunLayout(cfg.out_dir)
    for lang in cfg.data.languages:
        stem = layout.tokens(lang, "test")
        stem.parent.mkdir(parents=True, exist_ok=True)
        meta = {"vocab_size": len(tokenizer), "tokenizer_sha256": "0" * 64, "eos_id": tokenizer.eos_token_id,
                "language": lang, "split": "test"}
        with write_token_file(stem, meta) as writer:
            texts = texts_for(lang)
            writer.add_documents([tokenizer.encode(t, add_special_tokens=False) for t in texts])
            writer.num_bytes = sum(len(t.encode("utf-8")) for t in texts)


def save_debug_checkpoint(
    directory: Path, tokenizer_dir: Path, step: int, tokens_seen: int, seed: int
) -> Path:
    from transformers import AutoTokenizer

    from tessera.model.checkpoint import save_checkpoint
    from tessera.model.config import ModelSection, build_model_config
    from tessera.model.transformer import Transformer

    vocab_size = len(AutoTokenizer.from_pretrained(tokenizer_dir))
    torch.manual_seed(seed)
    model = Transformer(build_model_config(ModelSection(preset="debug"), vocab_size))
    meta = {"stage": directory.parent.name, "step": step, "tokens_seen": tokens_seen}
    return save_checkpoint(directory, model, meta, tokenizer_dir)


@pytest.fixture
def make_config():
    """`make_config(results_dir, **eval_section)` -> RunConfig."""
    return _make_config


def _published(cfg: RunConfig) -> list[tuple[str, int]]:
    """(stage, step) of every checkpoint the run publishes, in training order."""
    return [(stage.name, step) for stage in cfg.train.stages
            for step in checkpoint_steps(stage.num_steps, cfg.train.checkpoint_every)]


@pytest.fixture
def published():
    """`published(cfg)` -> [(stage, step)] of every published checkpoint, in training order."""
    return _published


@pytest.fixture
def eval_run(tmp_path, tokenizer_dir) -> RunConfig:
    """A run with test token files for every language and a random `debug` model at every published
    checkpoint (at least two)."""
    cfg = _make_config(tmp_path / "results", tasks=[], batch_size=4)
    write_test_tokens(cfg, tokenizer_dir)
    layout = RunLayout(cfg.out_dir)
    for index, (stage, step) in enumerate(_published(cfg)):
        # Steps restart in each stage; tokens seen keep growing.
        tokens_seen = (index + 1) * 1000
        save_debug_checkpoint(layout.checkpoint(stage, step), tokenizer_dir, step, tokens_seen, seed=index)
    return cfg
