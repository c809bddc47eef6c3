"""llama.cpp against transformers on one GGUF file: token ids, f32 logits, greedy continuation. Shared by
tests/release/test_gguf.py (tiny models) and tests/workflow/test_demo_workflow.py (the demo release)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
FLORES = REPO.parent / "shared" / "data" / "eval" / "flores200"
LANGUAGES = ("ita", "eng", "fra", "spa", "deu")
EDGE_CASES = "l'università\tdel 2024\n\n\n  c'è  \t\n x ’ 12,5%  l’amico I'LL he's\r\nStraße über"


def flores_devtest() -> dict[str, list[str]]:
    return {lang: (FLORES / "devtest" / f"{lang}.devtest").read_text(encoding="utf-8").splitlines()
            for lang in LANGUAGES}  # fmt: skip


def open_llama(llama_cpp, path: Path):
    """The GGUF file in llama.cpp with an f32 KV cache: what is left is the order of float32 operations."""
    return llama_cpp.Llama(
        str(path), n_ctx=128, n_batch=128, logits_all=True, type_k=0, type_v=0, verbose=False, n_threads=2
    )


def assert_same_token_ids(tokenizer, llm, flores: dict[str, list[str]]) -> None:
    for lang, lines in flores.items():
        mismatches = [
            line for line in lines
            if tokenizer(line, add_special_tokens=False)["input_ids"]
            != llm.tokenize(line.encode("utf-8"), add_bos=False, special=False)
        ]  # fmt: skip
        assert not mismatches, f"{lang}: {len(mismatches)} of {len(lines)} lines differ: {mismatches[0]!r}"
    ids = tokenizer(EDGE_CASES, add_special_tokens=False)["input_ids"]
    assert llm.tokenize(EDGE_CASES.encode("utf-8"), add_bos=False, special=False) == ids
    assert llm.detokenize(ids).decode("utf-8") == EDGE_CASES


def _greedy_hf(hf, prompt: list[int], num_tokens: int) -> list[int]:
    """Greedy by hand: generate() would stop at EOS, llama.cpp's generator does not."""
    out: list[int] = []
    with torch.no_grad():
        for _ in range(num_tokens):
            out.append(int(hf(torch.tensor([prompt + out])).logits[0, -1].argmax()))
    return out


def _greedy_llama(llm, prompt: list[int], num_tokens: int) -> list[int]:
    llm.reset()
    out: list[int] = []
    for token in llm.generate(prompt, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
        out.append(token)
        if len(out) == num_tokens:
            break
    return out


def assert_same_logits_and_greedy(hf, tokenizer, llm, flores: dict[str, list[str]]) -> set[int]:
    """On the first FLORES line of each language: logits within 1e-4 of their range, then 16 greedy tokens
    after a 12-token prompt. Returns the tokens the continuations hold."""
    seen: set[int] = set()
    for lang, lines in flores.items():
        ids = tokenizer(lines[0], add_special_tokens=False)["input_ids"][:48]
        llm.reset()
        llm.eval(ids)
        ours = np.array(llm.scores[: len(ids)])
        with torch.no_grad():
            theirs = hf(torch.tensor([ids])).logits[0].numpy()
        error = float(np.abs(ours - theirs).max() / (theirs.max() - theirs.min()))
        assert error <= 1e-4, (lang, error)
        expected = _greedy_hf(hf, ids[:12], 16)
        assert _greedy_llama(llm, ids[:12], 16) == expected, lang
        seen.update(expected)
    return seen
