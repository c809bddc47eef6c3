"""The data manifest: per source, where its documents came from and what each filter did to them.

`data/manifest.json` is the provenance record the release's AI Act documents are generated from. Every
field except `created_utc` is a deterministic function of the config and the input files, so two runs
give equal manifests apart from that timestamp. Field reference: docs/data.md.
"""

from __future__ import annotations

import datetime as dt
import platform
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from tessera.config import RunConfig, to_dict
from tessera.data.config import SourceConfig, license_duties
from tessera.data.filters import QUALITY_FILTERS
from tessera.data.pii import PII_KINDS
from tessera.io import sha256_file
from tessera.layout import SPLITS

__all__ = ["SourceStats", "build_manifest", "file_digest", "MANIFEST_VERSION", "DROP_REASONS"]

MANIFEST_VERSION = 1

DROP_REASONS = ("empty", *(f"quality_{name}" for name in QUALITY_FILTERS), "language", "exact_duplicate",
                "near_duplicate")
"""Why a document can be dropped, in the order the filters run; each is a counter per source."""

CLEANUPS = ("nfc_changed", "control_chars_removed", "gutenberg_boilerplate_removed")
"""Clean-ups that change a document's text without dropping it; each counts the documents it changed."""

_TOOLS = ("tessera", "py3langid", "datasketch", "zstandard", "pyarrow", "datasets")

# sha256 of large inputs (the demo's bible.db is 218 MB) is computed once per process per file version.
_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


@dataclass
class SourceStats:
    """Counters of one source, filled in as its documents pass the filters."""

    inputs: list[dict[str, Any]]
    documents_in: int = 0
    bytes_in: int = 0
    cleanup: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLEANUPS, 0))
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    dropped_language_as: dict[str, int] = field(default_factory=dict)
    pii_redactions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PII_KINDS, 0))
    splits: dict[str, dict[str, int]] = field(
        default_factory=lambda: {s: {"documents": 0, "bytes": 0} for s in SPLITS})

    def counts(self) -> dict[str, Any]:
        """The counters alone (a shard's share, merged by `add` into the source's totals)."""
        return {name: getattr(self, name) for name in _COUNTERS}

    def add(self, counts: dict[str, Any]) -> None:
        """Add a shard's `counts()` (or a part of them) to these counters."""
        for name, value in counts.items():
            setattr(self, name, _added(getattr(self, name), value))

    def kept(self, split: str, text_bytes: int) -> None:
        self.splits[split]["documents"] += 1
        self.splits[split]["bytes"] += text_bytes

    def as_dict(self, source: SourceConfig) -> dict[str, Any]:
        duties = license_duties(source.license)
        return {
            "kind": source.kind,
            "language": source.language,
            "license": source.license,
            "license_basis": source.license_basis,
            "origin": source.origin,
            "tdm_opt_out": source.tdm_opt_out,
            # What the licence asks of the release (tessera.data.config.license_duties), and the credit.
            "duties": {"attribution": duties.attribution, "share_alike": duties.share_alike,
                       "credit": source.attribution or source.origin},
            "max_documents": source.max_documents,
            "inputs": self.inputs,
            "documents_in": self.documents_in,
            "bytes_in": self.bytes_in,
            "cleanup": self.cleanup,
            "dropped": self.dropped,
            "dropped_language_as": dict(sorted(self.dropped_language_as.items())),
            "pii_redactions": self.pii_redactions,
            "documents_out": sum(s["documents"] for s in self.splits.values()),
            "bytes_out": sum(s["bytes"] for s in self.splits.values()),
            "splits": self.splits,
        }


_COUNTERS = ("documents_in", "bytes_in", "cleanup", "dropped", "dropped_language_as", "pii_redactions",
             "splits")


def _added(mine: Any, theirs: Any) -> Any:
    """Counters added key by key (nested dicts of ints); a key only one side has is kept."""
    if not isinstance(theirs, dict):
        return mine + theirs
    merged = dict(mine)
    for key, value in theirs.items():
        merged[key] = _added(mine[key], value) if key in mine else value
    return merged


def _tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _TOOLS:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def build_manifest(cfg: RunConfig, stats: dict[str, SourceStats]) -> dict[str, Any]:
    """The manifest: settings, tools, per-source provenance and counts, per-language and overall totals."""
    sources = {s.name: stats[s.name].as_dict(s) for s in cfg.data.sources}
    languages: dict[str, Any] = {}
    for lang in cfg.data.languages:
        names = [s.name for s in cfg.data.sources if s.language == lang]
        splits = {split: {key: sum(sources[n]["splits"][split][key] for n in names)
                          for key in ("documents", "bytes")}
                  for split in SPLITS}
        languages[lang] = {
            "sources": names,
            "documents_in": sum(sources[n]["documents_in"] for n in names),
            "bytes_in": sum(sources[n]["bytes_in"] for n in names),
            "documents_out": sum(s["documents"] for s in splits.values()),
            "bytes_out": sum(s["bytes"] for s in splits.values()),
            "splits": splits,
        }
    totals = {key: sum(lang[key] for lang in languages.values())
              for key in ("documents_in", "bytes_in", "documents_out", "bytes_out")}
    return {
        "manifest_version": MANIFEST_VERSION,
        "run": cfg.run.name,
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tools": _tool_versions(),
        "settings": {
            "seed": cfg.run.seed,
            "allowed_licenses": cfg.data.allowed_licenses,
            "filters": to_dict(cfg.data.filters),
            "splits": to_dict(cfg.data.splits),
            "zstd_level": cfg.data.zstd_level,
        },
        "sources": sources,
        "languages": languages,
        "totals": totals,
    }
