"""`tessera tokenizer train`: a byte-level BPE tokenizer whose languages cost about the same tokens per word.

Balancing. BPE spends its merges on what is frequent in its training sample, so a language's share of the
sample decides how well it is compressed. Equal bytes per language is the start; each balancing round
trains a trial tokenizer, measures tokens per whitespace word per language on held-out training text,
and multiplies each language's weight by (its fertility / the geometric mean)^BALANCE_EXPONENT: languages
that split worse get more of the sample; the round with the lowest parity ratio (max/min) is kept. No
closed form maps weights to fertility (it depends on morphology and on what the languages share), so
measuring is simpler and honest; three rounds take the demo corpus from parity 1.25 to 1.07. Weights
given in `tokenizer.language_weights` skip the rounds.

Pre-tokenisation (before byte-level BPE) is Qwen2's split, which llama.cpp implements natively (GGUF
`tokenizer.ggml.pre = "qwen2"`), so the GGUF release tokenizes exactly as transformers does:
  - a word carries one leading non-letter (a space, or the apostrophe of an elision: l|'uomo, dell|'anno,
    qu|'il), so an elided article costs what the article alone costs;
  - English contractions ('s 't 're 've 'm 'll 'd, either case) split off;
  - every digit is its own token, so numbers cost the same in every language and no merges go to digit
    strings; punctuation runs and whitespace follow GPT-2's convention.
No normaliser: llama.cpp applies none, so one in tokenizer.json would make the two runtimes disagree. The
data stage writes NFC text (tessera.data.filters.normalize_nfc), which is what both tokenizers see.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from tessera.config import RunConfig
from tessera.data.plan import split_shards
from tessera.data.shards import read_shard
from tessera.data.tokenize import require_shard
from tessera.errors import DataError
from tessera.io import atomic_dir, sha256_file, write_json
from tessera.layout import RunLayout
from tessera.tokenizer.config import TokenizerConfig
from tessera.tokenizer.fertility import measure, parity_ratio, token_counter

__all__ = [
    "train_tokenizer",
    "build_tokenizer",
    "fit_bpe",
    "PRETOKENIZE_PATTERN",
    "LLAMA_CPP_PRE",
    "TRAINING_RECORD",
]

log = logging.getLogger(__name__)

LLAMA_CPP_PRE = "qwen2"
"""llama.cpp's name for PRETOKENIZE_PATTERN (`tokenizer.ggml.pre` in the GGUF file)."""
PRETOKENIZE_PATTERN = (
    # llama.cpp's own spelling of Qwen2's regex (src/llama-vocab.cpp): the ASCII-only contraction group
    # instead of `(?i:'s|...)`, whose Unicode case folding would also match e.g. `'ſ` (long s).
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
    r"|[^\r\n\p{L}\p{N}]?\p{L}+"  # a word with one leading non-letter: a space, or an elision's apostrophe
    r"|\p{N}"  # one digit
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*"  # a punctuation run
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"  # newlines; spaces before a space-led word stay apart from it
)
BALANCE_EXPONENT = 4.0
"""How hard a round pushes weights: fertility responds weakly to sample share (roughly its log), so a
language 5% over the mean gets ~20% more weight per round (measured: parity 1.25 -> 1.07 in 3 rounds)."""
MIN_WEIGHT_SHARE = 0.25
"""No language falls below a quarter of an equal share: parity bought by starving one language of merges
would cost it more tokens than it saves the others."""
HELDOUT_EVERY = 10
"""Every 10th sampled training document is held out to measure fertility during balancing."""
HELDOUT_MAX_BYTES = 2_000_000
TRAINING_RECORD = "tessera_tokenizer.json"
"""The tokenizer folder's record of how it was fitted: weights and fertility per balancing round."""


def build_tokenizer() -> Tokenizer:
    """An untrained byte-level BPE tokenizer with tessera's pre-tokeniser and decoder (no normaliser)."""
    tokenizer = Tokenizer(models.BPE(byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def fit_bpe(texts: Iterator[str], vocab_size: int, special_tokens: list[str]) -> Tokenizer:
    """Train BPE on `texts`; special tokens take ids 0.. in order, then the 256 bytes, then merges."""
    tokenizer = build_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def _sample_language(shards: list[Path], budget_bytes: int, seed: int) -> tuple[list[str], list[str]]:
    """(training pool, held-out texts) drawn uniformly from a language's shards, about `budget_bytes` of
    the former.

    Two streaming passes (count, then draw) keep memory at the sample's size whatever the shards' size;
    every shard contributes in proportion to its text."""
    def documents() -> Iterator[dict]:
        for shard in shards:
            yield from read_shard(require_shard(shard))

    total = sum(len(doc["text"].encode("utf-8")) for doc in documents())
    if total == 0:
        raise DataError(f"{shards[0].parent}: no training text; the tokenizer needs every language of "
                        "data.sources")
    keep = min(1.0, budget_bytes * (1 + 1 / HELDOUT_EVERY) / total)
    rng = np.random.default_rng(seed)
    pool: list[str] = []
    heldout: list[str] = []
    heldout_bytes = 0
    for i, doc in enumerate(d for d in documents() if rng.random() < keep):
        if i % HELDOUT_EVERY == HELDOUT_EVERY - 1 and heldout_bytes < HELDOUT_MAX_BYTES:
            heldout.append(doc["text"])
            heldout_bytes += len(doc["text"].encode("utf-8"))
        else:
            pool.append(doc["text"])
    if not heldout:  # a language with one or a few documents: measure on its training text
        heldout = pool[:1]
    return pool, heldout


def _weighted_sample(
    pools: dict[str, list[str]], weights: dict[str, float], total_bytes: int
) -> Iterator[str]:
    """Each language's documents, cycled, until it has contributed weight * total_bytes (upsampling by
    repetition: BPE counts words, so a repeated document weighs as a more frequent one)."""
    for lang in sorted(pools):
        quota = weights[lang] * total_bytes
        given = 0
        for text in itertools.cycle(pools[lang]):
            if given >= quota:
                break
            given += len(text.encode("utf-8"))
            yield text


def _normalised(weights: dict[str, float]) -> dict[str, float]:
    norm = sum(weights.values())
    return {k: w / norm for k, w in sorted(weights.items())}


def train_tokenizer(cfg: RunConfig) -> Path:
    """Fit the tokenizer on the training shards and save it as a transformers-loadable folder."""
    section: TokenizerConfig = cfg.tokenizer
    layout = RunLayout(cfg.out_dir)
    languages = list(cfg.data.languages)
    # Config validation made them name every data language, with a positive sum.
    fixed = _normalised(section.language_weights) if section.language_weights else None
    specials = section.special_tokens

    pools, heldout = {}, {}
    for i, lang in enumerate(sorted(languages)):
        pools[lang], heldout[lang] = _sample_language(
            split_shards(cfg, lang, "train"), section.sample_bytes, cfg.run.seed + i
        )
    # Never feed more bytes than the languages hold together: small corpora are not inflated by repetition.
    total_bytes = min(section.sample_bytes, sum(len(t.encode("utf-8")) for p in pools.values() for t in p))

    weights = fixed or _normalised({lang: 1.0 for lang in languages})
    rounds: list[dict] = []
    fitted: list[Tokenizer] = []
    num_rounds = 0 if fixed else section.balance_rounds
    for round_index in range(num_rounds + 1):
        if round_index > 0:
            previous = rounds[-1]["tokens_per_word"]
            mean = math.exp(sum(math.log(f) for f in previous.values()) / len(previous))
            weights = _normalised(
                {k: w * (previous[k] / mean) ** BALANCE_EXPONENT for k, w in weights.items()}
            )
            floor = MIN_WEIGHT_SHARE / len(weights)
            weights = _normalised({k: max(w, floor) for k, w in weights.items()})
        tokenizer = fit_bpe(_weighted_sample(pools, weights, total_bytes), section.vocab_size, specials)
        count = token_counter(tokenizer)
        fertility = {lang: measure(count, texts).tokens_per_word for lang, texts in sorted(heldout.items())}
        rounds.append(
            {"weights": weights, "tokens_per_word": fertility, "parity_ratio": parity_ratio(fertility)}
        )
        fitted.append(tokenizer)
        log.info("tokenizer round %d: weights %s fertility %s", round_index, weights, fertility)

    # The round with the best parity wins (a later round can overshoot on tiny corpora).
    best = min(range(len(rounds)), key=lambda r: (rounds[r]["parity_ratio"], r))
    record = {"sample_bytes": total_bytes, "chosen_round": best, "rounds": rounds}
    if fitted[best].get_vocab_size() < section.vocab_size:  # the model sizes its embedding from the file
        log.warning(
            "the training text supports only %d of tokenizer.vocab_size = %d tokens (merges need pairs "
            "seen twice); add text or lower the size",
            fitted[best].get_vocab_size(),
            section.vocab_size,
        )
    save_tokenizer(fitted[best], layout.tokenizer_dir, section, record)
    return layout.tokenizer_dir


def save_tokenizer(tokenizer: Tokenizer, out_dir: Path, section: TokenizerConfig, record: dict) -> None:
    """Write the folder `transformers.AutoTokenizer.from_pretrained` loads, atomically."""
    from transformers import PreTrainedTokenizerFast

    bos, eos, pad, *reserved = section.special_tokens
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        additional_special_tokens=reserved,
        # Decoding must give back the text exactly: no "clean up" of spaces before punctuation.
        clean_up_tokenization_spaces=False,
    )
    with atomic_dir(out_dir) as tmp:
        fast.save_pretrained(tmp)
        _portable_config(tmp / "tokenizer_config.json")
        if not (tmp / "special_tokens_map.json").exists():  # transformers 5 folds it into tokenizer_config
            write_json(
                tmp / "special_tokens_map.json",
                {"bos_token": bos, "eos_token": eos, "pad_token": pad, "additional_special_tokens": reserved},
            )
        sha = sha256_file(tmp / "tokenizer.json")
        write_json(
            tmp / TRAINING_RECORD,
            {"tokenizer_sha256": sha, "vocab_size": tokenizer.get_vocab_size(), **record},
        )


def _portable_config(path: Path) -> None:
    """Write tokenizer_config.json in the form transformers 4.x and 5.x both load: 5.x names its class
    `TokenizersBackend` and its extra tokens `extra_special_tokens` (a dict in 4.x), which 4.x cannot read;
    `PreTrainedTokenizerFast` with `additional_special_tokens` loads as the same tokenizer in both."""
    config = json.loads(path.read_text(encoding="utf-8"))
    config.pop("backend", None)
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    if isinstance(config.get("extra_special_tokens"), list):
        config["additional_special_tokens"] = config.pop("extra_special_tokens")
    write_json(path, config)
