"""Tokenizer training: lossless round trip, transformers loading, special tokens, elisions, determinism."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from tessera.errors import ConfigError
from tessera.layout import RunLayout
from tessera.tokenizer.train import (
    LLAMA_CPP_PRE,
    PRETOKENIZE_PATTERN,
    TRAINING_RECORD,
    build_tokenizer,
    train_tokenizer,
)


def _tokenizer(cfg) -> Tokenizer:
    return Tokenizer.from_file(str(RunLayout(cfg.out_dir).tokenizer_dir / "tokenizer.json"))


def _assert_round_trip(tokenizer: Tokenizer, texts: list[str]) -> None:
    encodings = tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    decoded = tokenizer.decode_batch([e.ids for e in encodings], skip_special_tokens=False)
    for text, back in zip(texts, decoded, strict=True):
        assert back == text


def test_round_trip_every_demo_document(trained):
    cfg, texts = trained
    tokenizer = _tokenizer(cfg)
    assert sum(len(docs) for docs in texts.values()) >= 5 * 100
    for docs in texts.values():
        _assert_round_trip(tokenizer, docs)


def test_round_trip_shared_corpus(trained, shared_data: Path):
    tokenizer = _tokenizer(trained[0])
    files = sorted(p for p in (shared_data / "corpus").rglob("*") if p.is_file())
    assert files
    # NFC as the data stage applies it (the tokenizer has no normaliser: byte-level BPE is lossless).
    _assert_round_trip(
        tokenizer, [unicodedata.normalize("NFC", p.read_text(encoding="utf-8")) for p in files]
    )


def test_auto_tokenizer_loads_the_folder(trained):
    from transformers import AutoTokenizer

    cfg, texts = trained
    folder = RunLayout(cfg.out_dir).tokenizer_dir
    assert {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} <= {
        p.name for p in folder.iterdir()
    }
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"  # transformers 4.x loads it too
    assert config["clean_up_tokenization_spaces"] is False
    hf = AutoTokenizer.from_pretrained(folder)
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (0, 1, 2)
    assert hf.convert_ids_to_tokens([0, 1, 2, 3]) == ["<|bos|>", "<|eos|>", "<|pad|>", "<|reserved_0|>"]
    assert len(hf) == 1024
    text = texts["ita"][0]
    ids = hf(text, add_special_tokens=False)["input_ids"]
    assert ids == _tokenizer(cfg).encode(text, add_special_tokens=False).ids
    assert hf.decode(ids) == text
    # Special tokens in text are single ids (chat formats will rely on it) and never split by BPE.
    assert hf("<|reserved_5|>ciao", add_special_tokens=False)["input_ids"][0] == 8


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("l'uomo dell'anno", ["l", "'uomo", " dell", "'anno"]),
        ("c'è l’amico", ["c", "'è", " l", "’amico"]),
        ("qu'il aujourd'hui", ["qu", "'il", " aujourd", "'hui"]),
        ("he's I'LL", ["he", "'s", " I", "'LL"]),
        ("nel 2024, 15 anni", ["nel", " ", "2", "0", "2", "4", ",", " ", "1", "5", " anni"]),
        ("Straße über", ["Straße", " über"]),
        ("a\tb\n\n  c", ["a", "\tb", "\n\n", " ", " c"]),
    ],
)
def test_pretokenizer_is_qwen2s_split(text, pieces):
    tokenizer = build_tokenizer()
    got = [p for p, _ in tokenizer.pre_tokenizer.pre_tokenize_str(text)]
    decode = tokenizer.decoder.decode
    assert [decode([p]) for p in got] == pieces


def test_pretokenizer_is_the_one_llama_cpp_implements():
    # llama.cpp's regex for tokenizer.ggml.pre = "qwen2" (src/llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_QWEN2),
    # which unicode.cpp runs with its own exact implementation; a different pattern would tokenize apart.
    llama_cpp_qwen2 = (
        "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
        "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
    )
    assert (LLAMA_CPP_PRE, PRETOKENIZE_PATTERN) == ("qwen2", llama_cpp_qwen2)


def test_no_normaliser_llama_cpp_would_not_apply(trained):
    tokenizer = _tokenizer(trained[0])
    assert tokenizer.normalizer is None
    nfd = unicodedata.normalize("NFD", "città è")
    assert tokenizer.decode(tokenizer.encode(nfd).ids) == nfd  # byte-level: any text round-trips


def test_balancing_record_and_determinism(trained, make_tiny_run, tmp_path):
    cfg, _ = trained
    record = json.loads((RunLayout(cfg.out_dir).tokenizer_dir / TRAINING_RECORD).read_text())
    assert len(record["rounds"]) == 2  # equal weights, then one balanced round
    rounds = record["rounds"]
    first, balanced = rounds[0], rounds[1]
    assert record["chosen_round"] == min(range(len(rounds)), key=lambda r: rounds[r]["parity_ratio"])
    # Balancing moves sample share towards the language that split worst, away from the one that split best.
    worst = max(first["tokens_per_word"], key=first["tokens_per_word"].get)
    best = min(first["tokens_per_word"], key=first["tokens_per_word"].get)
    assert balanced["weights"][worst] > first["weights"][worst]
    assert balanced["weights"][best] < first["weights"][best]
    assert sorted(first["weights"]) == sorted(cfg.data.languages)
    assert abs(sum(record["rounds"][1]["weights"].values()) - 1) < 1e-9
    # Same config and data, another folder: the same bytes.
    again, _ = make_tiny_run(tmp_path)
    train_tokenizer(again)
    for name in ("tokenizer.json", TRAINING_RECORD):
        ours = (RunLayout(cfg.out_dir).tokenizer_dir / name).read_text()
        theirs = (RunLayout(again.out_dir).tokenizer_dir / name).read_text()
        assert ours == theirs


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"vocab_size": 300}, "tokenizer.vocab_size"),
        ({"reference": {"x": "some.model"}}, "tokenizer.reference.x"),
        ({"balance_rounds": -1}, "tokenizer.balance_rounds"),
        # Fixed weights must name every data language, and not all be zero.
        ({"language_weights": {"ita": 1.0}}, "tokenizer.language_weights: names ita, but the data languages"),
        ({"language_weights": dict.fromkeys(["ita", "eng", "fra", "spa", "deu"], 0.0)},
         "tokenizer.language_weights: at least one weight must be positive"),
    ],
)
def test_config_errors_name_the_key(make_tiny_run, tmp_path, keys, message):
    with pytest.raises(ConfigError, match=message):
        make_tiny_run(tmp_path, **keys)


def test_demo_tokenizer_keeps_flores_parity(make_tiny_run, shared_data: Path, tmp_path):
    """The demo's tokenizer settings (config.yaml) with llama.cpp's pre-tokenizer: FLORES-200 devtest
    parity (max/min tokens per word over the five languages) stays within 1.20 (measured: 1.18)."""
    from tessera.tokenizer.fertility import measure, parity_ratio, token_counter

    cfg, _ = make_tiny_run(tmp_path / "demo", vocab_size=8192, sample_bytes=4_000_000, balance_rounds=3)
    languages = cfg.data.languages
    assert sorted(languages) == ["deu", "eng", "fra", "ita", "spa"]
    train_tokenizer(cfg)
    count = token_counter(_tokenizer(cfg))
    devtest = shared_data / "eval" / "flores200" / "devtest"
    fertility = {
        lang: measure(count, (devtest / f"{lang}.devtest").read_text(encoding="utf-8").splitlines())
        for lang in languages
    }
    fertility = {lang: f.tokens_per_word for lang, f in fertility.items()}
    assert parity_ratio(fertility) <= 1.20, fertility
