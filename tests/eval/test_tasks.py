"""The local lm-eval tasks: upstream's prompts, real lm-eval runs on local files, absent data skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tessera.eval.tasks import LOCAL_TASK_DIR, _TaskYamlLoader, local_tasks, run_tasks, upstream_tasks


def test_local_tasks_and_their_files():
    tasks = local_tasks()
    assert tasks["tessera_xcopa_it"] == ["xcopa/val.it.jsonl", "xcopa/test.it.jsonl"]
    for lang in ("ita", "eng", "fra", "deu", "spa"):
        assert tasks[f"tessera_belebele_{lang}"] == [f"belebele/{lang}_Latn.jsonl"]
    assert upstream_tasks(["tessera_xcopa_it", "xcopa_it", "arc_it"]) == ["xcopa_it", "arc_it"]


def test_prompts_mirror_upstream(shared_data):
    import lm_eval
    from lm_eval.tasks.xcopa import utils as upstream_xcopa

    from tessera.eval.lm_eval_tasks import prompts

    for line in (shared_data / "eval/xcopa/val.it.jsonl").read_text(encoding="utf-8").splitlines()[:20]:
        doc = json.loads(line)
        assert prompts.xcopa_it_text(doc) == upstream_xcopa.doc_to_text_it(doc)
        assert prompts.xcopa_choices(doc) == upstream_xcopa.doc_to_choice(doc)
    # _TaskYamlLoader is a SafeLoader that keeps `!function` tags as strings.
    template = yaml.load(
        (LOCAL_TASK_DIR / "_tessera_belebele_template_yaml").read_text(), Loader=_TaskYamlLoader  # noqa: S506
    )
    upstream_path = Path(lm_eval.__file__).parent / "tasks" / "belebele" / "_default_template_yaml"
    upstream = yaml.safe_load(upstream_path.read_text())
    for key in ("doc_to_text", "doc_to_choice", "doc_to_target", "output_type", "metric_list"):
        assert template[key] == upstream[key]


@pytest.fixture(scope="module")
def tiny_lm(tokenizer_dir):
    """A random tiny transformers Qwen3-MoE wrapped for lm-eval: the shape of the exported model."""
    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer, Qwen3MoeConfig, Qwen3MoeForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = Qwen3MoeConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=8, num_experts=4,
        num_experts_per_tok=2, max_position_embeddings=2048,
    )
    return HFLM(pretrained=Qwen3MoeForCausalLM(config).eval(), tokenizer=tokenizer, batch_size=8)


def test_lm_eval_runs_the_local_tasks(tiny_lm, shared_data, tmp_path, make_config):
    cfg = make_config(tmp_path, tasks=["tessera_xcopa_it", "tessera_belebele_ita"], limit=4,
                      task_data_dir=str(shared_data / "eval"))
    results = run_tasks(tiny_lm, cfg)
    assert results.skipped == [] and results.errors == []
    xcopa, belebele = results.scores["tessera_xcopa_it"], results.scores["tessera_belebele_ita"]
    assert xcopa["num_samples"] == 4 and belebele["num_samples"] == 4
    assert 0 <= xcopa["acc"] <= 1 and {"acc", "acc_norm", "acc_stderr"} <= set(belebele)


def test_absent_task_data_is_skipped_not_fatal(tiny_lm, tmp_path, make_config):
    cfg = make_config(tmp_path, tasks=["tessera_xcopa_it", "tessera_belebele_fra"],
                      task_data_dir=str(tmp_path))
    results = run_tasks(tiny_lm, cfg)
    assert results.scores == {} and results.errors == []
    assert [s["task"] for s in results.skipped] == ["tessera_xcopa_it", "tessera_belebele_fra"]
    assert str(tmp_path / "xcopa/val.it.jsonl") in results.skipped[0]["reason"]


def test_a_failing_task_is_recorded_and_the_others_still_score(tiny_lm, shared_data, tmp_path, make_config):
    data_dir = tmp_path / "eval"
    (data_dir / "xcopa").mkdir(parents=True)
    (data_dir / "belebele").mkdir()
    for name in ("val.it.jsonl", "test.it.jsonl"):
        (data_dir / "xcopa" / name).write_text('{"premise": "no choices, no label"}\n')
    source = shared_data / "eval" / "belebele" / "ita_Latn.jsonl"
    (data_dir / "belebele" / "ita_Latn.jsonl").write_text("".join(source.open().readlines()[:4]))
    cfg = make_config(tmp_path, tasks=["tessera_xcopa_it", "tessera_belebele_ita"], limit=2,
                      task_data_dir=str(data_dir))
    results = run_tasks(tiny_lm, cfg)
    assert [e["task"] for e in results.errors] == ["tessera_xcopa_it"]
    assert list(results.scores) == ["tessera_belebele_ita"]

