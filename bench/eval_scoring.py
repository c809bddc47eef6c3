"""Evaluation cost on this machine: the two choices in tessera.eval that trade time.

1. Intrinsic scorer batch size: tokens/s of bits-per-byte scoring at batch 1, 4 and 16 (longest-first
   batching with right padding), `demo` model, random weights, 32 documents of 100-400 tokens.
2. lm-eval call layout: XCOPA-it + Belebele-ita (limit 20 each) in one `simple_evaluate` call against
   one call per task (what `run_tasks` does: a failure stays with its task). Each call also gathers
   environment facts (about a second).

Repeats are interleaved so that load from other processes hits every variant alike; the table reports
medians and ratios to the first variant. Run: `python bench/eval_scoring.py` (needs ../shared/data/eval).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _results import machine, update_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TASK_DATA = REPO.parent / "shared" / "data" / "eval"
REPEATS = 3


def _demo_model():
    from tessera.model.config import ModelSection, build_model_config
    from tessera.model.transformer import Transformer

    torch.manual_seed(0)
    return Transformer(build_model_config(ModelSection(preset="demo"), 8192)).eval()


def bench_batch_sizes() -> list[str]:
    from tessera.eval.intrinsic import score_documents

    model = _demo_model()
    generator = torch.Generator().manual_seed(0)
    documents = [torch.randint(2, 8192, (int(n),), generator=generator).tolist()
                 for n in torch.randint(100, 400, (32,), generator=generator)]
    num_tokens = sum(len(d) for d in documents)
    times: dict[int, list[float]] = {1: [], 4: [], 16: []}
    for _ in range(REPEATS):
        for batch_size in times:
            started = time.perf_counter()
            score_documents(lambda ids: model(ids).logits_BTV, documents, num_tokens * 4, eos_id=1,
                            context_length=256, batch_size=batch_size)
            times[batch_size].append(time.perf_counter() - started)
    base = statistics.median(times[1])
    rows = ["| batch size | tokens/s (median) | time vs batch 1 |", "|---:|---:|---:|"]
    for batch_size, samples in times.items():
        median = statistics.median(samples)
        rows.append(f"| {batch_size} | {num_tokens / median:,.0f} | {median / base:.2f} |")
    return rows


def bench_call_layout() -> list[str]:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import PreTrainedTokenizerFast, Qwen3MoeConfig, Qwen3MoeForCausalLM

    from tessera.eval.tasks import LOCAL_TASK_DIR

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(REPO.parent / "shared/data/tokenizers/gpt2/gpt2.json"),
        eos_token="<|endoftext|>", pad_token="<|endoftext|>",  # noqa: S106 token strings, not passwords
    )
    config = Qwen3MoeConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                            moe_intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, head_dim=16, num_experts=4, num_experts_per_tok=2,
                            max_position_embeddings=512)
    lm = HFLM(pretrained=Qwen3MoeForCausalLM(config).eval(), tokenizer=tokenizer, batch_size=16)
    manager = TaskManager(include_path=str(LOCAL_TASK_DIR), include_defaults=False,
                          metadata={"task_data_dir": str(TASK_DATA)})
    tasks = ["tessera_xcopa_it", "tessera_belebele_ita"]

    def run(task_lists: list[list[str]]) -> float:
        started = time.perf_counter()
        for task_list in task_lists:
            lm_eval.simple_evaluate(model=lm, tasks=task_list, task_manager=manager, limit=20,
                                    log_samples=False)
        return time.perf_counter() - started

    run([tasks])  # warm-up: dataset loading and first-call imports
    layouts = {"one call, both tasks": [tasks], "one call per task": [[t] for t in tasks]}
    times: dict[str, list[float]] = {name: [] for name in layouts}
    for _ in range(REPEATS):
        for name, task_lists in layouts.items():
            times[name].append(run(task_lists))
    base = statistics.median(times["one call, both tasks"])
    rows = ["| lm-eval calls | seconds (median) | time vs one call |", "|---|---:|---:|"]
    for name, samples in times.items():
        median = statistics.median(samples)
        rows.append(f"| {name} | {median:.2f} | {median / base:.2f} |")
    return rows


def main() -> None:
    torch.set_num_threads(2)
    sections = ["## Evaluation scoring (bench/eval_scoring.py)", "", machine(), "",
                "Intrinsic scorer, `demo` model, 32 documents, context 256:", "", *bench_batch_sizes()]
    if TASK_DATA.is_dir():
        sections += ["", "lm-eval, XCOPA-it + Belebele-ita, limit 20 each, tiny Qwen3-MoE:", "",
                     *bench_call_layout()]
    table = "\n".join(sections)
    print(table)
    update_section("eval_scoring", table)


if __name__ == "__main__":
    main()
