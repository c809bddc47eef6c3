"""The `data:` section: sources, licence allow-list, filters, splits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tessera.errors import ConfigError

__all__ = ["DataConfig", "SourceConfig"]


@dataclass
class SourceConfig:
    """One input source; every document it yields is traceable to it in the manifest."""

    name: str
    """Unique source name (used in the manifest and document ids)."""
    kind: Literal["sqlite", "text", "jsonl", "parquet", "hf"]
    """How to read it."""
    language: str
    """ISO 639-3 code of the declared language (ita, eng, fra, deu, spa, por, ...)."""
    license: str
    """SPDX id or `public-domain`; must be in `data.allowed_licenses`."""
    origin: str
    """Where it comes from: URL, or package and version."""
    tdm_opt_out: str
    """How text-and-data-mining opt-outs were honoured for this source."""
    path: str | None = None
    """File, glob or `pkg://<package>/<file>` (sqlite, text, jsonl, parquet)."""
    query: str | None = None
    """sqlite: SQL returning (doc_id, unit_id, text) rows."""
    license_basis: str | None = None
    """Why the licence holds (e.g. translator died before 1900)."""
    max_documents: int | None = None
    """Cap on documents read (demo sizing); null reads everything."""


@dataclass
class DataConfig:
    sources: list[SourceConfig]
    allowed_licenses: list[str] = field(default_factory=lambda: ["public-domain", "CC0-1.0", "CC-BY-4.0"])
    """Licences a source may carry; anything else stops the workflow."""

    @property
    def languages(self) -> list[str]:
        """Languages that have at least one source, in config order."""
        return list(dict.fromkeys(s.language for s in self.sources))

    def check(self, where: str) -> None:
        from tessera.config import KNOWN_LANGUAGES

        for i, source in enumerate(self.sources):
            key = f"{where}.sources[{i}]"
            if source.language not in KNOWN_LANGUAGES:
                raise ConfigError(
                    f"{key}.language: {source.language!r} is not a known ISO 639-3 code; "
                    f"allowed values: {', '.join(KNOWN_LANGUAGES)}"
                )
            if source.license not in self.allowed_licenses:
                raise ConfigError(
                    f"{key}.license: {source.license!r} (source {source.name}) is not in "
                    f"data.allowed_licenses; allowed values: {', '.join(self.allowed_licenses)}"
                )
