"""sha256 manifests: a published checkpoint or run state lists the sha256 of each of its files, and a
reader checks them before trusting the bytes (a damaged file of the right size loads without error)."""

from __future__ import annotations

import json
from pathlib import Path

from tessera.io import sha256_file

__all__ = ["file_hashes", "damaged_files", "MANIFEST_KEY", "manifest_of", "verify_tree"]

MANIFEST_KEY = "files"
"""The key of {file name: sha256} in a checkpoint's tessera.json or a run state's meta.json."""


def file_hashes(directory: Path, names: list[str]) -> dict[str, str]:
    return {name: sha256_file(Path(directory) / name) for name in sorted(names)}


def damaged_files(directory: Path, files: dict[str, str]) -> list[str]:
    """'name: why' for each listed file that is missing or whose sha256 differs; [] when all are intact."""
    problems = []
    for name, expected in sorted(files.items()):
        path = Path(directory) / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif sha256_file(path) != expected:
            problems.append(f"{name}: sha256 differs from the manifest (truncated, damaged or changed)")
    return problems


def manifest_of(meta_file: Path) -> dict[str, str] | None:
    """The {name: sha256} manifest in a tessera.json / meta.json, None when it has none (older files)."""
    try:
        raw = json.loads(Path(meta_file).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    files = raw.get(MANIFEST_KEY) if isinstance(raw, dict) else None
    return files if isinstance(files, dict) else None


def verify_tree(root: Path) -> tuple[int, list[str]]:
    """Check every folder under `root` (root included) whose tessera.json or meta.json has a manifest:
    (folders checked, 'folder: file: why' for each damaged file). What `tessera state verify` runs after
    copying a run between sites."""
    root = Path(root)
    metas = sorted({*root.rglob("tessera.json"), *root.rglob("meta.json")}) if root.is_dir() else []
    checked, problems = 0, []
    for meta in metas:
        files = manifest_of(meta)
        if files is None:
            continue
        checked += 1
        problems += [f"{meta.parent}: {p}" for p in damaged_files(meta.parent, files)]
    return checked, problems
