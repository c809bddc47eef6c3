"""Shared fixtures. `shared_data` is ../shared/data beside the repository: present on developer machines
and in CI, absent on a user's fresh clone, where tests that need it skip with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (only developer machines and CI have ../shared/data)")
    return SHARED_DATA
