"""Model checkpoints: one folder with the weights, the config they belong to and the tokenizer.

    <dir>/model.safetensors   tessera parameter names (see tessera.model.transformer), saved dtype kept
    <dir>/tessera.json        {"model": <ModelConfig as a mapping>, "stage", "step", "tokens_seen", ...,
                              "files": {name: sha256} of the weights and tokenizer files}
    <dir>/tokenizer.json, tokenizer_config.json, ...  (copied from the run's tokenizer folder)

Written atomically (a killed job leaves the previous checkpoint or none, never half of one). This is the
published, consolidated model; the optimizer and data-loader state live in the trainer's run state.
`read_safetensors` checks a file against the sha256 its folder's tessera.json lists, so damaged weights
(same size, other bytes) are never evaluated or exported.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tessera.config import from_dict, to_dict
from tessera.errors import CheckpointError, ConfigError
from tessera.integrity import MANIFEST_KEY, damaged_files, file_hashes, manifest_of
from tessera.io import atomic_dir, write_json
from tessera.model.config import ModelConfig
from tessera.model.layers import RotaryEmbedding
from tessera.model.transformer import Transformer

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "model_from_state",
    "read_checkpoint_meta",
    "is_tokenizer_file",
    "copy_tokenizer_files",
    "read_safetensors",
    "WEIGHTS_FILE",
    "META_FILE",
]

WEIGHTS_FILE = "model.safetensors"
META_FILE = "tessera.json"
REQUIRED_META = ("stage", "step", "tokens_seen")
# Files a tokenizer folder may hold (fast tokenizers, BPE vocab/merges, sentencepiece, chat template).
_TOKENIZER_NAMES = {"special_tokens_map.json", "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt",
                    "chat_template.jinja", "chat_template.json"}


def is_tokenizer_file(name: str) -> bool:
    return name.startswith("tokenizer") or name in _TOKENIZER_NAMES or name.endswith(".model")


def copy_tokenizer_files(source: Path, target: Path) -> None:
    """Copy the tokenizer files of folder `source` (see is_tokenizer_file) into `target`."""
    for item in sorted(source.iterdir()):
        if item.is_file() and is_tokenizer_file(item.name):
            shutil.copy2(item, target / item.name)


def read_safetensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; CheckpointError if it cannot be read, or if its folder's
    tessera.json lists a sha256 for it that its bytes do not have."""
    path = Path(path)
    manifest = manifest_of(path.parent / META_FILE) or {}
    if path.name in manifest:
        damaged = damaged_files(path.parent, {path.name: manifest[path.name]})
        if damaged:
            raise CheckpointError(
                f"{path.parent}: {damaged[0]}. Copy the checkpoint again from its source (check with "
                "`tessera state verify`), or re-publish it by retraining that segment"
            )
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"{path.parent}: {path.name} cannot be read ({err}); the file is truncated or corrupt"
        ) from None


def save_checkpoint(
    directory: str | Path, model: Transformer, meta: dict[str, Any], tokenizer_dir: str | Path | None = None
) -> Path:
    """Write `model`'s weights, its config plus `meta` (stage, step, tokens_seen, ...) and the tokenizer."""
    missing = [key for key in REQUIRED_META if key not in meta]
    if missing:
        raise ValueError(f"save_checkpoint: meta lacks {', '.join(missing)}")  # a caller's bug, not a user's
    directory = Path(directory)
    # Tied embeddings appear once (no lm_head); safetensors refuses shared or strided storage.
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    with atomic_dir(directory) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        if tokenizer_dir is not None:
            tokenizer_dir = Path(tokenizer_dir)
            if not tokenizer_dir.is_dir():
                raise CheckpointError(
                    f"{tokenizer_dir}: tokenizer folder not found (train the tokenizer first)"
                )
            copy_tokenizer_files(tokenizer_dir, tmp)
        names = [p.name for p in tmp.iterdir() if p.is_file() and p.name != META_FILE]
        write_json(tmp / META_FILE, {"model": to_dict(model.cfg), **meta,
                                     MANIFEST_KEY: file_hashes(tmp, names)})
    return directory


def read_checkpoint_meta(directory: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """The ModelConfig and the meta of a checkpoint folder, without loading its weights."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: checkpoint folder not found")
    meta_path = directory / META_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"{directory}: {META_FILE} is missing; the folder is not a tessera checkpoint "
            "(re-publish it, or import a transformers folder with `tessera import-hf`)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{meta_path}: not valid JSON ({err}); the checkpoint is corrupt") from None
    if not isinstance(meta, dict) or "model" not in meta:
        raise CheckpointError(f"{meta_path}: has no \"model\" entry; the checkpoint is corrupt")
    meta.pop(MANIFEST_KEY, None)  # checked where the files are read (read_safetensors)
    try:
        cfg = from_dict(ModelConfig, meta.pop("model"), f"{meta_path}: model")
    except ConfigError as err:
        raise CheckpointError(f"{err} (written by an incompatible tessera version?)") from None
    return cfg, meta


def load_checkpoint(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[Transformer, dict[str, Any]]:
    """Rebuild the Transformer of a checkpoint folder on `device` (weights in their saved dtype)."""
    directory = Path(directory)
    cfg, meta = read_checkpoint_meta(directory)
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"{directory}: {WEIGHTS_FILE} is missing; re-publish the checkpoint")
    state = read_safetensors(weights_path, device)
    mismatch = f"{weights_path}: does not match its {META_FILE} model config"
    return model_from_state(cfg, state, device, mismatch), meta


def model_from_state(
    cfg: ModelConfig, state: dict[str, torch.Tensor], device: str | torch.device, mismatch: str
) -> Transformer:
    """A Transformer that adopts `state`'s tensors; `mismatch` starts the error when they don't fit.

    Built without allocating or initialising (a 7B model would spend minutes in init). Non-persistent
    buffers are not in a state dict: the rotary tables are derived from the config and rebuilt; the
    others are accumulators that start at zero (the router's load count since the last bias update).
    tests/model/test_checkpoint.py checks both against a freshly built model.
    """
    with torch.device("meta"):
        model = Transformer(cfg)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        raise CheckpointError(f"{mismatch}: {err}") from None
    model.rotary = RotaryEmbedding(cfg.head_dim, cfg.rope_theta).to(device)
    for module in model.modules():
        for name, buffer in module.named_buffers(recurse=False):
            if buffer.is_meta:
                module.register_buffer(name, torch.zeros_like(buffer, device=device), persistent=False)
    return model
