"""Shared fixtures. `shared_data` is ../shared/data beside the repository: present on developer machines
and in CI, absent on a user's fresh clone, where tests that need it skip with a reason."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Workflow tests run Snakemake, whose rules call `tessera` and `torchrun` by name: put this
# interpreter's bin first on PATH, as `make run` does, whether or not the venv is activated.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(autouse=True)
def _few_threads():
    """One torch thread per in-process test: the CI machine's 2 cores are shared by the test run and the
    ranks it starts, and torch's default of one thread per core makes them thrash."""
    if "torch" not in sys.modules:  # a test that never imported torch need not pay for importing it
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (only developer machines and CI have ../shared/data)")
    return SHARED_DATA
