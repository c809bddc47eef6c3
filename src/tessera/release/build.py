"""`tessera release`: the release folder, written whole or not at all.

    results/<run>/release/
      model.safetensors, config.json, generation_config.json   the transformers model (export_hf)
      tokenizer.json, tokenizer_config.json, ...                the tokenizer
      tessera.json                                             which checkpoint it was exported from
      README.md                                                the model card (Hub YAML header)
      ai_act/<document>.{md,json}                              the AI Act documents (release.documents)
      ai_act/schemas/*.schema.json                             their JSON schemas
      MANIFEST.sha256                                          sha256 of every other file (sha256sum -c)

Order: check the declared keys, gather and cross-check the facts, check every source's licence; then, in a
temporary folder that replaces release/ only on success, export the weights, build the documents (which
state the exported weights' dtype and sha256) and validate them. A failed release leaves the previous
one (or none) in place.
"""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

import torch

from tessera.config import RunConfig
from tessera.io import atomic_dir, sha256_file, write_json, write_text
from tessera.layout import RunLayout
from tessera.model.hf import export_hf, hf_config
from tessera.release.documents import build_documents, render_markdown
from tessera.release.facts import Facts, gather_facts, read_exported_weights
from tessera.release.model_card import DOCUMENTS_DIR, model_card
from tessera.release.validate import (
    COMMON_SCHEMA,
    SCHEMA_FILES,
    check_categories,
    check_declared,
    check_sources,
    validate_document,
)

__all__ = ["build_release", "write_checksums", "CHECKSUMS_FILE"]

CHECKSUMS_FILE = "MANIFEST.sha256"
_DTYPES = {"checkpoint": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def write_checksums(folder: Path) -> Path:
    """`<sha256>  <path>` for every file below `folder` (sorted, relative, the checksum file excluded)."""
    lines = [
        f"{sha256_file(path)}  {path.relative_to(folder).as_posix()}"
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != CHECKSUMS_FILE
    ]
    out = folder / CHECKSUMS_FILE
    write_text(out, "\n".join(lines) + "\n")
    return out


def _architecture(facts: Facts) -> tuple[str, str]:
    """(transformers class, model_type) the export will write; a ConfigError if it cannot be exported."""
    config = hf_config(facts.model_cfg, torch.float32, {})
    return config["architectures"][0], config["model_type"]


def build_release(cfg: RunConfig) -> Path:
    """Write results/<run>/release/ from the run's final checkpoint, manifest, reports and config."""
    layout = RunLayout(cfg.out_dir)
    check_declared(cfg.release)
    facts = gather_facts(cfg)
    check_categories(cfg.release, facts.manifest)
    check_sources(facts.manifest, cfg.data.allowed_licenses, str(layout.manifest))
    architecture, model_type = _architecture(facts)
    with atomic_dir(layout.release_dir) as tmp:
        # The documents state the published weights' dtype and sha256: export them first.
        export_hf(facts.checkpoint, tmp, dtype=_DTYPES[cfg.release.dtype])
        read_exported_weights(facts, tmp)
        documents = build_documents(facts, architecture)
        for kind, document in documents.items():
            validate_document(document, kind)
        docs_dir = tmp / DOCUMENTS_DIR
        for kind, document in documents.items():
            write_json(docs_dir / f"{kind}.json", document)
            write_text(docs_dir / f"{kind}.md", render_markdown(document))
        schemas = files("tessera.release").joinpath("schemas")
        (docs_dir / "schemas").mkdir(parents=True, exist_ok=True)
        for name in [COMMON_SCHEMA, *SCHEMA_FILES.values()]:
            with schemas.joinpath(name).open("rb") as src, open(docs_dir / "schemas" / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
        write_text(tmp / "README.md", model_card(facts, documents, model_type))
        write_checksums(tmp)
    print(
        f"tessera release: wrote {layout.release_dir} ({len(documents)} AI Act documents, model card, "
        f"{CHECKSUMS_FILE})",
        flush=True,
    )
    return layout.release_dir
