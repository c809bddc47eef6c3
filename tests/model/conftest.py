"""Fixtures of the model tests. `device` is cpu unless TESSERA_TEST_DEVICE names another (bench/gpu_check.sh
sets cuda), so the same tests check the model on a GPU."""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(scope="session")
def device() -> torch.device:
    name = os.environ.get("TESSERA_TEST_DEVICE", "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"TESSERA_TEST_DEVICE={name} but CUDA is not available")
    return torch.device(name)
