"""The `data:` section: sources, licence allow-list, filters, splits.

Every value a user can get wrong is checked here, once, with a ConfigError that names the dotted key and
what is allowed; the data stage itself then trusts its config.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from tessera.data.langid import KNOWN_LANGUAGES
from tessera.errors import ConfigError
from tessera.names import check_name

__all__ = ["DataConfig", "SourceConfig", "DownloadConfig", "RemoteFile", "FilterConfig", "SplitConfig",
           "SOURCE_KINDS", "LicenseDuties", "license_duties"]

SOURCE_KINDS = ("sqlite", "text", "jsonl", "parquet", "hf")


@dataclass(frozen=True)
class LicenseDuties:
    """What a licence asks of whoever releases a model trained on the text (carried by the manifest)."""

    attribution: bool
    """The source must be credited (its `attribution` text, in the release documents)."""
    share_alike: bool
    """Adaptations of the text itself must carry the same licence (a release that redistributes text, e.g.
    samples in a model card, must say so; model weights are not an adaptation under the common reading,
    which the release documents state as such)."""


_DUTIES = {
    "public-domain": LicenseDuties(False, False),
    "CC0-1.0": LicenseDuties(False, False),
    "CC-BY-4.0": LicenseDuties(True, False),
    "CC-BY-SA-4.0": LicenseDuties(True, True),
    "CC-BY-SA-3.0": LicenseDuties(True, True),
    "ODC-By-1.0": LicenseDuties(True, False),
    "IODL-2.0": LicenseDuties(True, False),
}


def license_duties(license_id: str) -> LicenseDuties:
    """The duties of a licence tessera knows; an unknown one is taken to need attribution (the safe side)."""
    return _DUTIES.get(license_id, LicenseDuties(True, False))

# Keys each kind needs (beyond the common ones) and keys that only make sense for some kinds: a key set
# on a kind that ignores it is a mistake worth reporting (e.g. `query` on a text source).
_REQUIRED = {"sqlite": ("path", "query"), "text": ("path",), "jsonl": ("path",), "parquet": ("path",),
             "hf": ("hf_name",)}
_DOWNLOADABLE = ("text", "jsonl", "parquet")
_ONLY_FOR = {
    "query": ("sqlite",),
    "text_field": ("jsonl", "parquet", "hf"),
    "id_field": ("jsonl", "parquet", "hf"),
    "unit_field": ("jsonl", "parquet", "hf"),
    "hf_name": ("hf",),
    "hf_config": ("hf",),
    "hf_split": ("hf",),
    "path": ("sqlite", "text", "jsonl", "parquet"),
}


@dataclass
class RemoteFile:
    """One file of a downloaded source, relative to the download's `url`."""

    path: str
    """Path under the base URL, kept under the source's cache folder (e.g. data/ita_Latn/train/x.parquet)."""
    sha256: str | None = None
    """Expected sha256 (hex); null: the server's published one (Hugging Face's X-Linked-Etag) if any,
    else recorded at the first fetch (pin it here from `<cache>/<source>/fetched.json`)."""
    size: int | None = None
    """Expected size in bytes; a download that ends short of it is refused as truncated."""


@dataclass
class DownloadConfig:
    """Where `tessera data fetch` downloads a file source from (on the login node), resumably."""

    url: str
    """Base URL; `{revision}` is replaced by `revision` (https://, http:// or file://)."""
    revision: str
    """The pinned dataset revision (a commit id on the hub)."""
    files: list[RemoteFile]
    """The files to download, in reading order."""

    def check(self, where: str) -> None:
        if not self.url.startswith(("https://", "http://", "file://")):
            raise ConfigError(f"{where}.url: {self.url!r} must start with https://, http:// or file://")
        if not self.files:
            raise ConfigError(f"{where}.files: list at least one file to download")
        for i, remote in enumerate(self.files):
            parts = remote.path.split("/")
            if not remote.path or remote.path.startswith("/") or ".." in parts:
                raise ConfigError(f"{where}.files[{i}].path: {remote.path!r} must be a relative path inside "
                                  "the download")
            digest = remote.sha256 or ""
            if remote.sha256 is not None and (len(digest) != 64 or set(digest) - set("0123456789abcdef")):
                raise ConfigError(f"{where}.files[{i}].sha256: {remote.sha256!r} is not 64 lower-case hex "
                                  "digits")


@dataclass
class SourceConfig:
    """One input source; every document it yields is traceable to it in the manifest."""

    name: str
    """Unique source name (used in the manifest, document ids and the hub cache folder)."""
    kind: Literal["sqlite", "text", "jsonl", "parquet", "hf"]
    """How to read it: sqlite (rows of a query), text (one document per file), jsonl, parquet, hf (hub)."""
    language: str
    """ISO 639-3 code of the declared language (ita, eng, fra, deu, spa, por, ...)."""
    license: str
    """SPDX id or `public-domain`; must be in `data.allowed_licenses`."""
    origin: str
    """Where it comes from: URL, or package and version."""
    tdm_opt_out: str
    """How text-and-data-mining opt-outs (EU DSM Directive art. 4(3)) were honoured for this source."""
    path: str | None = None
    """sqlite/jsonl/parquet/text: a file, a glob (matches read in sorted order), or `pkg://<package>/<file>`
    for a file shipped inside an installed Python package. Relative paths are relative to the working
    directory (the repository root when run by Snakemake)."""
    query: str | None = None
    """sqlite: SQL returning columns `doc` (document key), `text`, and optionally `unit` (alignment key,
    the same on every row of a document). Consecutive rows with the same `doc` are joined, one row per
    line, into one document; so order the rows by document (e.g. one verse per row, one chapter per
    document)."""
    text_field: str = "text"
    """jsonl/parquet/hf: the field holding the document text."""
    id_field: str | None = None
    """jsonl/parquet/hf: the field holding a document key; null numbers records from 0 in read order."""
    unit_field: str | None = None
    """jsonl/parquet/hf: the field holding the alignment key of parallel sources; null = not parallel."""
    hf_name: str | None = None
    """hf: dataset name on the hub (or a local folder: a `save_to_disk` folder or parquet/json files)."""
    hf_config: str | None = None
    """hf: dataset configuration (subset) name."""
    hf_split: str = "train"
    """hf: which split of the hub dataset to read."""
    license_basis: str | None = None
    """Why the licence holds (e.g. translator died before 1900); required for `public-domain`."""
    max_documents: int | None = None
    """Cap on documents read, in source order (demo sizing); null reads everything."""
    attribution: str | None = None
    """The credit the licence requires (e.g. 'FineWeb-2 by Hugging Face, ODC-By 1.0'); the manifest carries
    it, with the licence's duties, into the release documents (null: `origin` is the credit)."""
    download: DownloadConfig | None = None
    """jsonl/parquet/text: fetched by `tessera data fetch` into `<cache_dir>/<name>/` (then `path`, if
    set, is a glob inside that folder; unset: the downloaded files in their listed order)."""
    num_shards: int = 1
    """Jobs that filter this source: its documents (after `max_documents`) are cut into this many
    contiguous, near-equal slices, each one `prepare_shard` job whose memory is bounded by its slice.
    The documents kept, their splits and the manifest counts do not depend on it."""

    def check(self, where: str) -> None:
        check_name(self.name, f"{where}.name")
        check_name(self.language, f"{where}.language")
        if self.download is not None:
            if self.kind not in _DOWNLOADABLE:
                raise ConfigError(f"{where}.download: kind {self.kind} is not downloaded; it applies to "
                                  f"kinds: {', '.join(_DOWNLOADABLE)}")
        for key in _REQUIRED[self.kind]:
            if key == "path" and self.download is not None:
                continue  # the downloaded files
            if getattr(self, key) in (None, ""):
                raise ConfigError(f"{where}.{key}: required for kind {self.kind} (source {self.name})")
        for key, kinds in _ONLY_FOR.items():
            if getattr(self, key) != _DEFAULTS[key] and self.kind not in kinds:
                raise ConfigError(
                    f"{where}.{key}: not used by kind {self.kind} (source {self.name}); "
                    f"it applies to kinds: {', '.join(kinds)}"
                )
        if self.num_shards < 1:
            raise ConfigError(f"{where}.num_shards: {self.num_shards} must be a positive integer")
        if self.max_documents is not None and self.max_documents <= 0:
            raise ConfigError(
                f"{where}.max_documents: {self.max_documents} must be a positive integer, or null for no cap"
            )
        if self.license == "public-domain" and not self.license_basis:
            raise ConfigError(
                f"{where}.license_basis: required when license is public-domain (source {self.name}): "
                "say why, e.g. 'translator died in 1649'"
            )


_DEFAULTS = {f.name: f.default for f in fields(SourceConfig)}
"""A key of _ONLY_FOR left at its default is not a mistake on any kind."""


@dataclass
class FilterConfig:
    """Thresholds of the per-document filters; a document failing one is dropped and counted."""

    min_chars: int = 200
    """Documents shorter than this (after clean-up) are dropped as too short."""
    max_symbol_ratio: float = 0.10
    """Maximum share of characters that are neither letters, digits, whitespace nor common punctuation."""
    max_digit_ratio: float = 0.15
    """Maximum share of characters that are digits (tables, lists of numbers)."""
    max_repeated_line_ratio: float = 0.30
    """Maximum share of non-empty lines that repeat an earlier line of the same document."""
    language_id: bool = True
    """Drop documents whose identified language differs from the source's declared one."""
    min_language_confidence: float = 0.5
    """A document is dropped only when the identifier prefers another language with at least this
    probability; below it the declared language stands (short or mixed text)."""
    redact_pii: bool = True
    """Replace e-mail addresses, phone numbers, IBANs and Italian codici fiscali with placeholders."""
    dedup_exact: bool = True
    """Drop documents whose text (after clean-up) is identical to an earlier one of the same language."""
    dedup_near: bool = True
    """Drop documents whose MinHash Jaccard estimate to an earlier one exceeds `near_dup_threshold`."""
    near_dup_threshold: float = 0.8
    """Jaccard similarity (of word 5-gram sets) above which two documents are near-duplicates."""
    minhash_permutations: int = 128
    """MinHash permutations: more is more precise and slower."""
    shingle_words: int = 5
    """Words per shingle for near-duplicate detection."""

    def check(self, where: str) -> None:
        if self.min_chars < 0:
            raise ConfigError(f"{where}.min_chars: {self.min_chars} must be >= 0")
        for key in ("minhash_permutations", "shingle_words"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: {getattr(self, key)} must be a positive integer")
        fractions = ("max_symbol_ratio", "max_digit_ratio", "max_repeated_line_ratio",
                     "min_language_confidence", "near_dup_threshold")
        for key in fractions:
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{where}.{key}: {value} must be a fraction between 0 and 1")


@dataclass
class SplitConfig:
    """Shares of validation and test; the rest is train. Assignment hashes the unit key with the run seed."""

    validation: float = 0.05
    """Share of units (or documents, for non-parallel sources) in the validation split."""
    test: float = 0.05
    """Share of units (or documents) in the test split."""

    def check(self, where: str) -> None:
        for key in ("validation", "test"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"{where}.{key}: {getattr(self, key)} must be a fraction in [0, 1)")
        if self.validation + self.test >= 1.0:
            raise ConfigError(
                f"{where}: validation + test = {self.validation + self.test} leaves no training data; "
                "their sum must be below 1"
            )


@dataclass
class DataConfig:
    sources: list[SourceConfig]
    """Input sources; each language with a source gets shards for every split."""
    allowed_licenses: list[str] = field(default_factory=lambda: ["public-domain", "CC0-1.0", "CC-BY-4.0"])
    """Licences a source may carry; anything else stops the workflow."""
    filters: FilterConfig = field(default_factory=FilterConfig)
    """Per-document filter thresholds."""
    splits: SplitConfig = field(default_factory=SplitConfig)
    """Validation and test shares."""
    cache_dir: Path | None = None
    """Where `tessera data fetch` stores hub sources (`<cache_dir>/<source>/`); null: `<run>/sources/`."""
    zstd_level: int = 10
    """zstandard level of the shards (fixed, so that reruns give byte-identical files)."""
    num_dedup_jobs: int = 1
    """Jobs per language that find duplicate pairs, each over a group of LSH bands (and the exact
    digests); the result does not depend on it."""

    @property
    def languages(self) -> list[str]:
        """Languages that have at least one source, in config order."""
        return list(dict.fromkeys(s.language for s in self.sources))

    def source(self, name: str) -> SourceConfig:
        """The source called `name`, or a ConfigError listing the names there are."""
        for source in self.sources:
            if source.name == name:
                return source
        raise ConfigError(f"data.sources: no source named {name!r}; sources: "
                          f"{', '.join(s.name for s in self.sources)}")

    def check(self, where: str) -> None:
        if not self.sources:
            raise ConfigError(f"{where}.sources: at least one source is required")
        if self.num_dedup_jobs < 1:
            raise ConfigError(f"{where}.num_dedup_jobs: {self.num_dedup_jobs} must be a positive integer")
        if not 1 <= self.zstd_level <= 22:
            raise ConfigError(f"{where}.zstd_level: {self.zstd_level} must be between 1 and 22")
        seen: set[str] = set()
        for i, source in enumerate(self.sources):
            key = f"{where}.sources[{i}]"
            if source.name in seen:
                raise ConfigError(
                    f"{key}.name: {source.name!r} is used by an earlier source; names must be unique")
            seen.add(source.name)
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
