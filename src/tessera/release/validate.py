"""The checks that stop a release before anything is written.

- every key of `release:` that the AI Act documents cannot do without is filled in (ConfigError naming
  `release.<key>`);
- every data source in the manifest has a licence on the allow-list, a stated basis for a public-domain
  claim and a statement of how text-and-data-mining opt-outs were honoured (ReleaseError naming the
  source): the manifest may come from an earlier config than the one checked at load time;
- every JSON document validates against its schema shipped in `tessera/release/schemas/`.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

import jsonschema
from referencing import Registry, Resource

from tessera.errors import ConfigError, ReleaseError
from tessera.release.config import REQUIRED_AT_RELEASE, ReleaseConfig

__all__ = [
    "check_declared",
    "check_sources",
    "check_categories",
    "validate_document",
    "load_schema",
    "SCHEMA_FILES",
]

SCHEMA_FILES = {
    "training_content_summary": "training_content_summary.schema.json",
    "technical_documentation": "technical_documentation.schema.json",
    "copyright_policy": "copyright_policy.schema.json",
    "compute_thresholds": "compute_thresholds.schema.json",
}
"""Each document's schema; all of them `$ref` the fact and table shapes in common.schema.json."""
COMMON_SCHEMA = "common.schema.json"

_HINTS = {
    "provider": "the legal name of the organisation placing the model on the market",
    "contact": "an address or e-mail for the AI Office, downstream providers and rightsholders",
    "intended_use": "what the model is for and for whom",
    "content_types": "a list of the kinds of content trained on, e.g. [non-fiction text]",
}


def check_declared(release: ReleaseConfig) -> None:
    """Stop when a key the documents require was left empty."""
    for key in REQUIRED_AT_RELEASE:
        value = getattr(release, key)
        if not value or not str(value).strip():
            raise ConfigError(
                f"release.{key}: required to release (the AI Act documents state it) but empty; set it to "
                f"{_HINTS[key]} in the config's release: section"
            )


def check_categories(release: ReleaseConfig, manifest: dict[str, Any]) -> None:
    """`release.source_categories` may only name sources the manifest has (a typo would misfile one)."""
    for name in release.source_categories:
        if name not in manifest["sources"]:
            raise ConfigError(
                f"release.source_categories.{name}: no source named {name!r} in the data manifest; sources: "
                f"{', '.join(manifest['sources'])}"
            )


def check_sources(manifest: dict[str, Any], allowed_licenses: list[str], where: str) -> None:
    """Every source's licence is allowed and its provenance statements are present."""
    if not manifest.get("sources"):
        raise ReleaseError(f"{where}: lists no data sources; rerun the data stage (snakemake prepare_data)")
    allowed = ", ".join(allowed_licenses)
    for name, source in manifest["sources"].items():
        license_ = (source.get("license") or "").strip()
        if not license_:
            raise ReleaseError(
                f"{where}: source {name!r} has no licence; give data.sources[{name}].license "
                f"(one of {allowed}) "
                "and rerun the data stage, or remove the source"
            )
        if license_ not in allowed_licenses:
            raise ReleaseError(
                f"{where}: source {name!r} has licence {license_!r}, which is not allowed "
                "(data.allowed_licenses: "
                f"{allowed}); remove the source and rerun the data stage, or allow its licence once you have "
                "checked that its terms permit training and releasing the weights"
            )
        if license_ == "public-domain" and not (source.get("license_basis") or "").strip():
            raise ReleaseError(
                f"{where}: source {name!r} claims public-domain without a license_basis; state why in "
                f"data.sources[{name}].license_basis and rerun the data stage"
            )
        if not (source.get("tdm_opt_out") or "").strip():
            raise ReleaseError(
                f"{where}: source {name!r} does not say how text-and-data-mining opt-outs were honoured; "
                "fill "
                f"data.sources[{name}].tdm_opt_out and rerun the data stage"
            )


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A schema file shipped in the package (tessera/release/schemas/)."""
    return json.loads(files("tessera.release").joinpath("schemas", name).read_text(encoding="utf-8"))


@cache
def _registry() -> Registry:
    common = load_schema(COMMON_SCHEMA)
    return Registry().with_resource(common["$id"], Resource.from_contents(common))


def validate_document(document: dict[str, Any], kind: str) -> None:
    """Raise ReleaseError naming the first field that breaks `kind`'s schema."""
    schema = load_schema(SCHEMA_FILES[kind])
    validator = jsonschema.Draft202012Validator(schema, registry=_registry())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        path = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise ReleaseError(
            f"{kind}.json: {path}: {first.message} (schema {SCHEMA_FILES[kind]}); this is a bug in the "
            "document generator or the schema: report it with the run's reports"
        )
