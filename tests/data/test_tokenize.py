"""`tessera tokenize`: shards -> token files that decode back to the documents, atomically, any batching;
the index that joins a language's token shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

import tessera.data.tokenize as tokenize_module
from tessera.config import RunConfig
from tessera.data.shards import ShardWriter, record
from tessera.data.tokenize import index_tokens, tokenize_shard
from tessera.data.tokens import dtype_for_vocab, open_token_file, suffixed
from tessera.errors import DataError
from tessera.layout import RunLayout
from tessera.tokenizer.train import fit_bpe, save_tokenizer

SENTENCES = [
    "Nel mezzo del cammin di nostra vita mi ritrovai per una selva oscura, ché la diritta via era smarrita.",
    "L'uomo dell'anno c'è: è già l’una, e nell'aula 42 si parla d'arte e d'amore.",
    "Quel ramo del lago di Como, che volge a mezzogiorno, tra due catene non interrotte di monti.",
    "",  # an empty document is still a document: one EOS
    "Emoji e simboli: 🙂 € ½ — «virgolette» “curve” e accenti à è é ì ò ù.",
]


@pytest.fixture
def run(make_config, tmp_path) -> RunConfig:
    source = {
        "name": "t",
        "kind": "text",
        "path": "x",
        "language": "ita",
        "license": "public-domain",
        "license_basis": "test",
        "origin": "test",
        "tdm_opt_out": "test",
    }
    cfg = make_config([source])
    layout = RunLayout(cfg.out_dir)
    docs = [f"{s} ({i})" if s else s for i in range(60) for s in SENTENCES]
    for split, part in (("train", docs), ("validation", docs[:7]), ("test", docs[7:9])):
        path = layout.shard("ita", split, 0)
        path.parent.mkdir(parents=True, exist_ok=True)
        with ShardWriter(path, level=3) as writer:
            for i, text in enumerate(part):
                writer.write(record(f"t/{i}", "t", "ita", None, text))
    tokenizer = fit_bpe(iter(docs), 600, cfg.tokenizer.special_tokens)
    save_tokenizer(tokenizer, layout.tokenizer_dir, cfg.tokenizer, record={})
    return cfg


def _texts(cfg: RunConfig, split: str) -> list[str]:
    from tessera.data.shards import read_shard

    return [d["text"] for d in read_shard(RunLayout(cfg.out_dir).shard("ita", split, 0))]


def _tokenize(cfg: RunConfig, num_threads: int | None = None) -> Path:
    tokenize_shard(cfg, "ita", 0, num_threads=num_threads)
    return RunLayout(cfg.out_dir).token_shard("ita", "train", 0)


def test_token_files_decode_to_the_documents(run):
    stem = _tokenize(run, num_threads=2)
    file = open_token_file(stem)
    texts = _texts(run, "train")
    tokenizer = Tokenizer.from_file(str(RunLayout(run.out_dir).tokenizer_dir / "tokenizer.json"))
    eos = tokenizer.token_to_id("<|eos|>")
    assert file.tokens.dtype == np.uint16 and file.meta["eos_id"] == eos
    assert file.num_documents == len(texts) == 300
    assert file.meta["num_bytes"] == sum(len(t.encode("utf-8")) for t in texts)
    assert (file.meta["language"], file.meta["split"]) == ("ita", "train")
    assert file.meta["vocab_size"] == tokenizer.get_vocab_size()
    for i, text in enumerate(texts):
        ids = file.document(i)
        assert ids[-1] == eos and eos not in ids[:-1]
        assert tokenizer.decode(ids[:-1].tolist(), skip_special_tokens=False) == text
    assert int(np.count_nonzero(np.asarray(file.tokens) == eos)) == file.num_documents


def test_batching_does_not_change_the_output(run, monkeypatch):
    stem = _tokenize(run)
    whole = {s: suffixed(stem, s).read_bytes() for s in (".bin", ".idx", ".json")}
    monkeypatch.setattr(tokenize_module, "BATCH_BYTES", 500)  # ~60 batches through the reader thread
    _tokenize(run)
    assert {s: suffixed(stem, s).read_bytes() for s in (".bin", ".idx", ".json")} == whole


def test_a_corrupt_shard_leaves_the_previous_token_files(run):
    layout = RunLayout(run.out_dir)
    before = open_token_file(_tokenize(run)).num_tokens
    shard = layout.shard("ita", "train", 0)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 40] = bytes(40)  # a damaged block fails in the reader thread
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"ita/train/00000\.jsonl\.zst: unreadable"):
        _tokenize(run)
    assert open_token_file(layout.token_shard("ita", "train", 0)).num_tokens == before
    assert sorted(p.name for p in layout.token_shard("ita", "train", 0).parent.iterdir()) == [
        "00000.bin",
        "00000.idx",
        "00000.json",
    ]  # no temporary files left


def test_missing_inputs_name_the_stage(run):
    with pytest.raises(DataError, match="language 'fra' has no shard"):
        tokenize_shard(run, "fra", 0)
    RunLayout(run.out_dir).shard("ita", "test", 0).unlink()
    with pytest.raises(DataError, match=r"ita/test/00000\.jsonl\.zst.*tessera data prepare"):
        tokenize_shard(run, "ita", 0)
    (RunLayout(run.out_dir).tokenizer_dir / "tokenizer.json").unlink()
    with pytest.raises(DataError, match="tessera tokenizer train"):
        tokenize_shard(run, "ita", 0)


def test_the_index_reads_its_shards_as_one_stream(run):
    layout = RunLayout(run.out_dir)
    tokenize_shard(run, "ita", 0)
    index_tokens(run, "ita")
    single = open_token_file(layout.token_shard("ita", "train", 0))
    joined = open_token_file(layout.tokens("ita", "train"))
    assert joined.num_tokens == single.num_tokens and joined.meta["num_bytes"] == single.meta["num_bytes"]
    assert (joined.read(5, 40) == single.tokens[5:45]).all()
    # A shard rewritten after the index no longer matches it: named, not read silently.
    layout.shard("ita", "train", 0).write_bytes(layout.shard("ita", "validation", 0).read_bytes())
    tokenize_shard(run, "ita", 0)
    with pytest.raises(DataError, match=r"ita/train\.json: indexes .* tokens, its shards hold"):
        open_token_file(layout.tokens("ita", "train"))


def test_wide_vocabularies_use_uint32():
    assert dtype_for_vocab(65536) == np.uint16
    assert dtype_for_vocab(65537) == np.uint32


def test_tokenize_cli(run, tmp_path: Path, monkeypatch):
    import yaml

    from tessera.cli import main
    from tessera.config import to_dict

    config = tmp_path / "run.yaml"
    raw = to_dict(run)
    raw.pop("source")
    config.write_text(yaml.safe_dump(raw))
    assert (
        main(
            [
                "--config",
                str(config),
                "tokenize",
                "--language",
                "ita",
                "--part",
                "0",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert main(["--config", str(config), "tokenize", "--language", "ita", "--index"]) == 0
    assert open_token_file(RunLayout(run.out_dir).tokens("ita", "validation")).num_documents == 7
