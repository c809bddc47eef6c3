from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from tessera.errors import CheckpointError
from tessera.model.checkpoint import load_checkpoint, read_checkpoint_meta, save_checkpoint
from tessera.model.config import PRESETS, MoEConfig
from tessera.model.transformer import Transformer

META = {"stage": "stable", "step": 7, "tokens_seen": 7168}


def _model(**changes) -> Transformer:
    torch.manual_seed(0)
    return Transformer(dataclasses.replace(PRESETS["debug"], **changes))


@pytest.fixture()
def tokenizer_dir(tmp_path):
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    (folder / "tokenizer.json").write_text('{"version": "1.0"}')
    (folder / "tokenizer_config.json").write_text("{}")
    return folder


@pytest.mark.parametrize("tied", [False, True])
def test_round_trip_restores_weights_config_and_meta(tmp_path, tokenizer_dir, tied):
    model = _model(tie_embeddings=tied)
    ckpt = save_checkpoint(tmp_path / "step-000007", model, META, tokenizer_dir=tokenizer_dir)
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "model.safetensors", "tessera.json", "tokenizer.json", "tokenizer_config.json"
    ]
    loaded, meta = load_checkpoint(ckpt)
    assert meta == META and loaded.cfg == model.cfg
    ids_BT = torch.randint(0, model.cfg.vocab_size, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids_BT).logits_BTV, model(ids_BT).logits_BTV, rtol=0, atol=0)
    assert json.loads((ckpt / "tessera.json").read_text())["model"]["d_model"] == model.cfg.d_model


def test_damaged_weights_of_the_same_size_are_refused(tmp_path, tokenizer_dir):
    """A changed byte loads without error from safetensors; the manifest's sha256 catches it."""
    ckpt = save_checkpoint(tmp_path / "step-000007", _model(), META, tokenizer_dir=tokenizer_dir)
    files = json.loads((ckpt / "tessera.json").read_text())["files"]
    assert sorted(files) == ["model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    weights = ckpt / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors: sha256 differs from the manifest"):
        load_checkpoint(ckpt)


def test_bf16_weights_keep_their_dtype(tmp_path):
    model = _model().to(torch.bfloat16)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "c", model, META))
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}


def test_expert_bias_is_saved(tmp_path):
    model = _model(moe=MoEConfig(num_experts=4, top_k=2, expert_hidden=32, bias_balancing=True))
    bias_E = torch.tensor([0.1, -0.2, 0.3, -0.2])
    model.moe_layers()[0].gate.expert_bias_E.copy_(bias_E)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "c", model, META))
    torch.testing.assert_close(loaded.moe_layers()[0].gate.expert_bias_E, bias_E)
    # Buffers not in the file come back as a freshly built model has them (derived or zero).
    fresh = dict(model.named_buffers())
    for name, buffer in loaded.named_buffers():
        if "expert_bias" not in name:
            expected = torch.zeros_like(fresh[name]) if "load_E" in name else fresh[name]
            torch.testing.assert_close(buffer, expected)


def test_overwrite_replaces_the_folder_whole(tmp_path):
    ckpt = tmp_path / "c"
    save_checkpoint(ckpt, _model(), META)
    (ckpt / "stale.txt").write_text("from an older save")
    save_checkpoint(ckpt, _model(), {**META, "step": 8})
    assert not (ckpt / "stale.txt").exists()
    assert read_checkpoint_meta(ckpt)[1]["step"] == 8


def test_truncated_weights_name_the_folder_and_file(tmp_path):
    ckpt = save_checkpoint(tmp_path / "c", _model(), META)
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=rf"{ckpt}: model.safetensors: sha256 differs .*truncated"):
        load_checkpoint(ckpt)


@pytest.mark.parametrize("missing", ["model.safetensors", "tessera.json"])
def test_missing_file_names_the_folder_and_file(tmp_path, missing):
    ckpt = save_checkpoint(tmp_path / "c", _model(), META)
    (ckpt / missing).unlink()
    with pytest.raises(CheckpointError, match=rf"{ckpt}: {missing} is missing"):
        load_checkpoint(ckpt)


def test_missing_folder_and_mismatched_config(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint folder not found"):
        load_checkpoint(tmp_path / "nowhere")
    ckpt = save_checkpoint(tmp_path / "c", _model(), META)
    meta = json.loads((ckpt / "tessera.json").read_text())
    meta["model"]["d_model"] = 32
    (ckpt / "tessera.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="model.safetensors: does not match its tessera.json"):
        load_checkpoint(ckpt)
    meta["model"]["layers"] = 2
    (ckpt / "tessera.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="unknown key"):
        load_checkpoint(ckpt)
