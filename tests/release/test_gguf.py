"""GGUF release files: llama.cpp's converter writes them, and llama.cpp (llama-cpp-python) then gives
transformers' token ids on FLORES-200 devtest in every language, its logits (f32) and its greedy
continuation, for the demo preset and for a tiny model with each cluster preset's routing."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tessera.errors import ConfigError, ReleaseError
from tessera.model.checkpoint import save_checkpoint
from tessera.model.config import PRESETS, ModelConfig
from tessera.model.hf import export_hf
from tessera.model.transformer import Transformer
from tessera.release.build import CHECKSUMS_FILE
from tessera.release.gguf import (
    LLAMA_CPP_PYTHON_VERSION,
    RELEASE_TYPES,
    check_gguf_exportable,
    check_tokenizer,
    convert,
    gguf_file_name,
)
from tessera.release.how_to_run import MODELFILE

from .conftest import REPO
from .llama_parity import (
    FLORES,
    LANGUAGES,
    assert_same_logits_and_greedy,
    assert_same_token_ids,
    flores_devtest,
    open_llama,
)


def _tiny(preset: str) -> ModelConfig:
    """The preset's routing (experts, top-k, shared expert, renormalisation, QK-norm) at a tiny width."""
    moe = dataclasses.replace(
        PRESETS[preset].moe,
        expert_hidden=16,
        shared_hidden=16 if PRESETS[preset].moe.num_shared_experts else 0,
    )
    return dataclasses.replace(
        PRESETS[preset],
        d_model=64,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
        max_seq_len=128,
        moe=moe,
    )


MODELS = {
    "demo": PRESETS["demo"],
    "olmoe-1b-7b": _tiny("olmoe-1b-7b"),
    "olmoe-1b-7b-shared": _tiny("olmoe-1b-7b-shared"),
}


def test_release_ships_gguf_files_with_checksums_and_run_instructions(built_release):
    gguf = pytest.importorskip("gguf", reason="the gguf package (tessera[release]) reads the files")
    release = built_release.out_dir / "release"
    name = built_release.release.model_name
    listed = {line.split("  ", 1)[1] for line in (release / CHECKSUMS_FILE).read_text().splitlines()}
    for outtype in RELEASE_TYPES:
        path = release / gguf_file_name(name, outtype)
        assert path.name in listed
        reader = gguf.GGUFReader(path)
        field = reader.get_field("tokenizer.ggml.pre")
        assert bytes(field.parts[-1]).decode() == "qwen2"
        arch = reader.get_field("general.architecture")
        assert bytes(arch.parts[-1]).decode() == "qwen3moe"
    assert MODELFILE in listed
    assert f"FROM ./{name}-q8_0.gguf" in (release / MODELFILE).read_text()
    card = (release / "README.md").read_text()
    assert "## How to run" in card
    for command in ("vllm serve", "llama-completion -m", "ollama create", f"{name}-f16.gguf"):
        assert command in card


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_dense_layers": 1, "dense_hidden": 96}, "model.overrides.num_dense_layers: 0"),
        (
            {
                "moe": dataclasses.replace(
                    PRESETS["olmoe-1b-7b-shared"].moe, expert_hidden=16, shared_hidden=16
                ),
                "qk_norm": False,
                "tie_embeddings": True,
            },
            "model.overrides.tie_embeddings: false",
        ),
    ],
)
def test_gguf_refuses_what_llama_cpp_cannot_load(changes, message):
    with pytest.raises(ConfigError, match=f"llama.cpp.*{message}"):
        check_gguf_exportable(dataclasses.replace(_tiny("olmoe-1b-7b"), **changes), "ckpt")


def test_gguf_refuses_a_tokenizer_llama_cpp_would_split_differently(tmp_path):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ReleaseError, match="tessera tokenizer train"):
        check_tokenizer(tmp_path)


# ---- parity with llama.cpp ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama_cpp():
    pytest.importorskip("gguf", reason="the GGUF writer: pip install -e '.[release]'")
    return pytest.importorskip("llama_cpp", reason="llama.cpp's Python binding: pip install -e '.[llama]'")


@pytest.fixture(scope="module")
def flores() -> dict[str, list[str]]:
    if not (FLORES / "devtest").is_dir():
        pytest.skip(f"FLORES-200 absent ({FLORES}): the shared data is not next to this checkout")
    return flores_devtest()


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """tessera's tokenizer, trained on FLORES dev (not devtest) in the five languages, 4096 tokens."""
    from transformers import PreTrainedTokenizerFast

    from tessera.tokenizer.train import fit_bpe

    if not (FLORES / "dev").is_dir():
        pytest.skip(f"FLORES-200 absent ({FLORES})")
    texts = [line for lang in LANGUAGES for line in (FLORES / "dev" / f"{lang}.dev").read_text().splitlines()]
    folder = tmp_path_factory.mktemp("tokenizer")
    specials = ["<|bos|>", "<|eos|>", "<|pad|>"]
    PreTrainedTokenizerFast(
        tokenizer_object=fit_bpe(iter(texts), 4096, specials),
        bos_token=specials[0],
        eos_token=specials[1],
        pad_token=specials[2],
        clean_up_tokenization_spaces=False,
    ).save_pretrained(folder)
    return folder


def _briefly_trained(cfg: ModelConfig, tokenizer, num_steps: int = 40) -> Transformer:
    """A model fitted for a few steps on FLORES dev: a random one's greedy continuation repeats a token."""
    torch.manual_seed(0)
    model = Transformer(cfg)
    text = "\n".join((FLORES / "dev" / "ita.dev").read_text().splitlines()[:200])
    ids = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"])
    windows = ids[: len(ids) // 65 * 65].view(-1, 65)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(num_steps):
        batch = windows[torch.arange(8) + 8 * step % max(1, len(windows) - 8)]
        logits = model(batch[:, :-1]).logits_BTV
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


@pytest.fixture(scope="module", params=list(MODELS))
def converted(request, llama_cpp, tokenizer_dir, tmp_path_factory):
    """(transformers model, tokenizer, llama.cpp model) of one exported, f32-converted checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = dataclasses.replace(MODELS[request.param], vocab_size=len(tokenizer))
    out = tmp_path_factory.mktemp(request.param)
    model = _briefly_trained(cfg, tokenizer)
    ckpt = save_checkpoint(out / "ckpt", model, {"stage": "s", "step": 1, "tokens_seen": 1}, tokenizer_dir)
    hf_dir = export_hf(ckpt, out / "hf")
    path = convert(hf_dir, out / "model-f32.gguf", "f32")
    llm = open_llama(llama_cpp, path)
    hf = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    yield request.param, hf, tokenizer, llm
    llm.close()


def test_llama_cpp_token_ids_equal_transformers_on_flores(converted, flores):
    _, _, tokenizer, llm = converted
    assert_same_token_ids(tokenizer, llm, flores)


def test_llama_cpp_logits_and_greedy_continuation_equal_transformers(converted, flores):
    _, hf, tokenizer, llm = converted
    continuations = assert_same_logits_and_greedy(hf, tokenizer, llm, flores)
    assert len(continuations) > 2  # a fitted model: the continuations are not one token repeated


def test_the_binding_is_the_llama_cpp_whose_converter_the_release_runs():
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert f'"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"' in pyproject
