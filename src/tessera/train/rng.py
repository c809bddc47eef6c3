"""RNG states of a rank as tensors plus JSON, so that a run state holds nothing to unpickle.

python's `random` and numpy's MT19937 states are integer tuples (JSON); torch's CPU and CUDA generator
states are byte tensors (safetensors).
"""

from __future__ import annotations

import json
import random

import numpy as np
import torch

__all__ = ["rng_tensors", "rng_json", "set_rng"]

_PREFIX = "rng."


def rng_tensors() -> dict[str, torch.Tensor]:
    tensors = {f"{_PREFIX}torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"{_PREFIX}cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return tensors


def rng_json() -> str:
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return json.dumps({"python": [version, list(internal), gauss],
                       "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]})


def set_rng(tensors: dict[str, torch.Tensor], text: str) -> None:
    """Restore what rng_tensors/rng_json saved (CUDA states only when this rank has the same GPUs)."""
    states = json.loads(text)
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors[f"{_PREFIX}torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith(f"{_PREFIX}cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
