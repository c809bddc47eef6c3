from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer

from tessera.errors import CheckpointError, ConfigError
from tessera.model.checkpoint import load_checkpoint, save_checkpoint
from tessera.model.config import PRESETS, MoEConfig
from tessera.model.hf import export_hf, import_hf
from tessera.model.transformer import Transformer

META = {"stage": "stable", "step": 3, "tokens_seen": 384}
SHARED = MoEConfig(num_experts=4, top_k=2, expert_hidden=32, num_shared_experts=1, shared_hidden=48)
CONFIGS = {
    # Qwen3-MoE: QK-norm, a dense first layer (mlp_only_layers), untied, renormalised top-k.
    "qwen3_moe": dataclasses.replace(PRESETS["debug"], rope_theta=5000.0),
    # Qwen2-MoE: a gated shared expert, no QK-norm, tied embeddings, plain top-k weights.
    "qwen2_moe": dataclasses.replace(
        PRESETS["debug"],
        qk_norm=False,
        tie_embeddings=True,
        num_dense_layers=0,
        dense_hidden=0,
        moe=dataclasses.replace(SHARED, renormalize=False),
    ),
}


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """A tiny BPE tokenizer folder (vocabulary within the debug preset's 256)."""
    folder = tmp_path_factory.mktemp("tokenizer")
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=200,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(["nel mezzo del cammin di nostra vita"] * 20, trainer)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "pad_token": "<pad>",
                "unk_token": "<unk>",
            }
        )
    )
    return folder


def _checkpoint(tmp_path, cfg, tokenizer_dir=None):
    torch.manual_seed(0)
    model = Transformer(cfg)
    with torch.no_grad():  # norms away from 1, so that a missed or misplaced norm shows in the logits
        for name, param in model.named_parameters():
            if "norm" in name:
                param.uniform_(0.5, 1.5)
    return model.eval(), save_checkpoint(tmp_path / "ckpt", model, META, tokenizer_dir=tokenizer_dir)


@pytest.mark.parametrize("model_type", list(CONFIGS))
def test_transformers_loads_the_export_with_the_same_logits(tmp_path, tokenizer_dir, device, model_type):
    model, ckpt = _checkpoint(tmp_path, CONFIGS[model_type], tokenizer_dir)
    out = export_hf(ckpt, tmp_path / "hf")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == model_type
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert config["eos_token_id"] == tokenizer.eos_token_id == tokenizer.convert_tokens_to_ids("</s>")

    hf_model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).to(device).eval()
    assert type(hf_model).__name__ == config["architectures"][0]
    model = model.to(device)
    torch.manual_seed(1)
    ids_BT = torch.randint(0, model.cfg.vocab_size, (2, 24), device=device)
    with torch.no_grad():
        ours, theirs = model(ids_BT).logits_BTV, hf_model(ids_BT).logits
    assert (ours - theirs).abs().max().item() <= 1e-4

    prompt = tokenizer("nel mezzo", return_tensors="pt").input_ids.to(device)
    generated = hf_model.generate(prompt, max_new_tokens=4, do_sample=False)
    assert generated.shape == (1, prompt.shape[1] + 4)


@pytest.mark.parametrize("model_type", list(CONFIGS))
def test_import_inverts_export(tmp_path, model_type):
    model, ckpt = _checkpoint(tmp_path, CONFIGS[model_type])
    back, meta = load_checkpoint(import_hf(export_hf(ckpt, tmp_path / "hf"), tmp_path / "back"))
    assert back.cfg == model.cfg
    assert meta["stage"] == "import" and meta["step"] == 0
    for (name, ours), (back_name, theirs) in zip(
        model.state_dict().items(), back.state_dict().items(), strict=True
    ):
        assert name == back_name and torch.equal(ours, theirs)


def test_export_can_cast_to_bf16(tmp_path):
    model, ckpt = _checkpoint(tmp_path, CONFIGS["qwen3_moe"])
    out = export_hf(ckpt, tmp_path / "hf", dtype=torch.bfloat16)
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    hf_model = AutoModelForCausalLM.from_pretrained(out)
    assert hf_model.dtype == torch.bfloat16
    expected = model.layers[0].self_attn.q_proj.weight.to(torch.bfloat16)
    assert torch.equal(hf_model.model.layers[0].self_attn.q_proj.weight, expected)


def test_import_reads_the_stacked_expert_layout(tmp_path):
    """transformers 5 holds experts stacked in memory; a folder saved from that state must import too."""
    model, ckpt = _checkpoint(tmp_path, CONFIGS["qwen3_moe"])
    out = export_hf(ckpt, tmp_path / "hf")
    hf_model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    stacked = {k: v.contiguous() for k, v in hf_model.state_dict().items()}
    assert "model.layers.1.mlp.experts.gate_up_proj" in stacked
    (out / "model.safetensors").unlink()
    save_file(stacked, str(out / "model.safetensors"))
    back, _ = load_checkpoint(import_hf(out, tmp_path / "back"))
    ids_BT = torch.randint(0, model.cfg.vocab_size, (1, 10))
    with torch.no_grad():
        torch.testing.assert_close(back(ids_BT).logits_BTV, model(ids_BT).logits_BTV, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"moe": dataclasses.replace(PRESETS["debug"].moe, router="sigmoid")},
            "model.overrides.moe.router: softmax",
        ),
        ({"moe": SHARED}, "model.overrides.qk_norm: false"),
        ({"qk_norm": False}, "model.overrides.qk_norm: true"),
        # What llama.cpp would compute differently without an error (it has no norm_topk_prob):
        (
            {"moe": dataclasses.replace(PRESETS["debug"].moe, renormalize=False)},
            "llama.cpp's qwen3moe .* model.overrides.moe.renormalize: true",
        ),
        ({"moe": SHARED, "qk_norm": False}, "llama.cpp's qwen2moe .* model.overrides.moe.renormalize: false"),
    ],
)
def test_export_refuses_options_no_architecture_represents(tmp_path, changes, message):
    _, ckpt = _checkpoint(tmp_path, dataclasses.replace(PRESETS["debug"], **changes))
    with pytest.raises(ConfigError, match=message):
        export_hf(ckpt, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_export_refuses_a_trained_selection_bias_but_not_a_zero_one(tmp_path):
    cfg = dataclasses.replace(
        PRESETS["debug"], moe=dataclasses.replace(PRESETS["debug"].moe, bias_balancing=True)
    )
    torch.manual_seed(0)
    model = Transformer(cfg)
    export_hf(save_checkpoint(tmp_path / "zero", model, META), tmp_path / "hf-zero")
    model.moe_layers()[0].gate.expert_bias_E.fill_(0.1).index_fill_(0, torch.tensor([0]), -0.3)
    with pytest.raises(ConfigError, match="model.overrides.moe.bias_balancing: false"):
        export_hf(save_checkpoint(tmp_path / "biased", model, META), tmp_path / "hf-biased")


def test_import_refuses_what_tessera_cannot_represent(tmp_path):
    _, ckpt = _checkpoint(tmp_path, CONFIGS["qwen2_moe"])
    out = export_hf(ckpt, tmp_path / "hf")
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "qkv_bias": True}))
    with pytest.raises(ConfigError, match="qkv_bias = True has no tessera equivalent"):
        import_hf(out, tmp_path / "back")
    (out / "config.json").write_text(json.dumps({**config, "model_type": "mixtral"}))
    with pytest.raises(ConfigError, match="model_type 'mixtral' cannot be imported; supported: qwen3_moe"):
        import_hf(out, tmp_path / "back")
    with pytest.raises(CheckpointError, match="config.json is missing"):
        import_hf(tmp_path, tmp_path / "back")


def test_cli_verbs(tmp_path, repo_root, capsys):
    from tessera.cli import main

    _, ckpt = _checkpoint(tmp_path, CONFIGS["qwen3_moe"])
    assert main(["export-hf", "--checkpoint", str(ckpt), "--out", str(tmp_path / "hf")]) == 0
    assert main(["import-hf", "--hf-dir", str(tmp_path / "hf"), "--out", str(tmp_path / "back")]) == 0
    assert (tmp_path / "back" / "model.safetensors").is_file()
    _, shared_ckpt = _checkpoint(tmp_path / "bad", dataclasses.replace(PRESETS["debug"], moe=SHARED))
    assert main(["export-hf", "--checkpoint", str(shared_ckpt), "--out", str(tmp_path / "hf-bad")]) == 1
    assert "model.overrides.qk_norm: false" in capsys.readouterr().err
    config = str(repo_root / "config.yaml")
    assert main(["--config", config, "model", "info", "--preset", "olmoe-1b-7b"]) == 0
    assert "| olmoe-1b-7b * | 16 | 2048 |" in capsys.readouterr().out
