"""`tessera state verify PATH...`: after copying a run between sites (docs/slurm.md, "Moving a run"),
check every run state and published checkpoint under the paths against its sha256 manifest."""

from __future__ import annotations

from pathlib import Path

from tessera.errors import CheckpointError
from tessera.integrity import verify_tree

__all__ = ["verify_paths"]


def verify_paths(paths: list[Path]) -> int:
    """Folders checked; CheckpointError listing every damaged or missing file."""
    checked, problems = 0, []
    for path in paths:
        if not Path(path).is_dir():
            raise CheckpointError(f"{path}: folder not found")
        found, damaged = verify_tree(Path(path))
        checked, problems = checked + found, problems + damaged
    if problems:
        raise CheckpointError(
            f"{len(problems)} file(s) do not match their manifest:\n  " + "\n  ".join(problems)
            + "\nCopy them again (rerun the same rsync), then verify again; do not resume before"
        )
    if checked == 0:
        raise CheckpointError(f"{', '.join(map(str, paths))}: no run state or checkpoint with a manifest")
    print(f"tessera state verify: {checked} folder(s) intact")
    return checked
