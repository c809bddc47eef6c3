"""How close llama.cpp runs the release's GGUF types to transformers (an accuracy table, not a timing).

    python bench/gguf_parity.py

For the test models of tests/release/test_gguf.py (the demo preset and a tiny model with each cluster
preset's routing, fitted for 40 steps on FLORES dev with a tokenizer trained there): export, convert to
f32, f16 and q8_0 with llama.cpp's converter (tessera.release.gguf), and compare llama.cpp's logits with
transformers' (float32) on 48 tokens of the first FLORES devtest line of each language: the largest
|dlogit| as a fraction of the logit range, and how often the top-1 token agrees. Needs llama_cpp and
../shared/data/eval/flores200. Records the table in bench/RESULTS.md (section gguf_parity).
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(Path(__file__).resolve().parent), str(REPO)]

from _results import machine, update_section  # noqa: E402

from tessera.model.checkpoint import save_checkpoint  # noqa: E402
from tessera.model.hf import export_hf  # noqa: E402
from tessera.release.gguf import convert  # noqa: E402
from tests.release.llama_parity import FLORES, LANGUAGES, flores_devtest, open_llama  # noqa: E402
from tests.release.test_gguf import MODELS, _briefly_trained  # noqa: E402


def _tokenizer(folder: Path):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from tessera.tokenizer.train import fit_bpe

    texts = [line for lang in LANGUAGES for line in (FLORES / "dev" / f"{lang}.dev").read_text().splitlines()]
    specials = ["<|bos|>", "<|eos|>", "<|pad|>"]
    PreTrainedTokenizerFast(
        tokenizer_object=fit_bpe(iter(texts), 4096, specials), bos_token=specials[0], eos_token=specials[1],
        pad_token=specials[2],
    ).save_pretrained(folder)  # fmt: skip
    return AutoTokenizer.from_pretrained(folder)


def _compare(llm, hf, tokenizer, flores) -> tuple[float, int, int]:
    worst, agree, total = 0.0, 0, 0
    for lines in flores.values():
        ids = tokenizer(lines[0], add_special_tokens=False)["input_ids"][:48]
        llm.reset()
        llm.eval(ids)
        ours = np.array(llm.scores[: len(ids)])
        with torch.no_grad():
            theirs = hf(torch.tensor([ids])).logits[0].numpy()
        worst = max(worst, float(np.abs(ours - theirs).max() / (theirs.max() - theirs.min())))
        agree += int((ours.argmax(-1) == theirs.argmax(-1)).sum())
        total += len(ids)
    return worst, agree, total


def main() -> None:
    import llama_cpp
    from transformers import AutoModelForCausalLM

    flores = flores_devtest()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        tokenizer = _tokenizer(out / "tokenizer")
        for name, cfg in MODELS.items():
            model = _briefly_trained(dataclasses.replace(cfg, vocab_size=len(tokenizer)), tokenizer)
            meta = {"stage": "s", "step": 1, "tokens_seen": 1}
            ckpt = save_checkpoint(out / name / "ckpt", model, meta, out / "tokenizer")
            hf_dir = export_hf(ckpt, out / name / "hf")
            hf = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
            for outtype in ("f32", "f16", "q8_0"):
                llm = open_llama(llama_cpp, convert(hf_dir, out / name / f"{outtype}.gguf", outtype))
                worst, agree, total = _compare(llm, hf, tokenizer, flores)
                llm.close()
                rows.append(f"| {name} | {outtype} | {worst:.1e} | {agree} / {total} |")
    md = "\n".join(
        [
            "## GGUF in llama.cpp against transformers (bench/gguf_parity.py)",
            "",
            f"Machine: {machine()}",
            "",
            "| model | GGUF | max \\|dlogit\\| / logit range | top-1 agreement |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    print(md)
    update_section("gguf_parity", md)


if __name__ == "__main__":
    main()
