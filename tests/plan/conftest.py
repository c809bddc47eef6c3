"""The repository's own configs and profiles: the planner reads site facts from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tessera.config import load
from tessera.plan.site import site_config_files, site_record

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def leonardo():
    """(config.yaml + configs/leonardo.yaml, its SiteRecord)."""
    cfg = load(site_config_files(REPO, "leonardo"))
    return cfg, site_record(cfg, REPO, "leonardo")
