"""`tessera eval checkpoint`: one result file per checkpoint; a broken checkpoint fails alone, by name."""

from __future__ import annotations

import json
import math

import pytest

from tessera.cli import main
from tessera.errors import CheckpointError
from tessera.eval.evaluate import evaluate_checkpoint
from tessera.layout import RunLayout


def test_result_has_every_language_and_the_gap_to_the_best(eval_run, published, tokenizer_dir):
    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(tokenizer_dir))
    layout = RunLayout(eval_run.out_dir)
    stage, step = published(eval_run)[0]
    out = layout.eval_result(stage, step)
    result = evaluate_checkpoint(eval_run, layout.checkpoint(stage, step), out)
    assert json.loads(out.read_text()) == result
    assert (result["stage"], result["step"], result["tokens_seen"]) == (stage, step, 1000)
    assert set(result["intrinsic"]) == set(eval_run.data.languages)
    for scores in result["intrinsic"].values():
        # Both measure the same total NLL: bits/byte x bytes = log2(perplexity) x tokens.
        total_bits = scores["bits_per_byte"] * scores["num_bytes"]
        assert total_bits == pytest.approx(math.log2(scores["perplexity"]) * scores["num_tokens"])
        # An untrained model is near uniform over the vocabulary.
        assert 0.5 * vocab < scores["perplexity"] < 2 * vocab
        assert scores["gap_to_best"] >= 0
    assert min(s["gap_to_best"] for s in result["intrinsic"].values()) == 0
    assert result["tasks"] == {} and result["errors"] == []


def test_truncated_checkpoint_fails_by_name_and_the_others_complete(eval_run, published, capsys, repo_root):
    layout = RunLayout(eval_run.out_dir)
    (stage, step), (next_stage, next_step) = published(eval_run)[:2]
    broken = layout.checkpoint(stage, step)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    with pytest.raises(CheckpointError, match=str(broken)):
        evaluate_checkpoint(eval_run, broken, layout.eval_result(stage, step))
    assert not layout.eval_result(stage, step).exists()  # Snakemake must not take it for a result

    # Through the CLI with the demo config, as the Snakemake job runs it: exit 1, one line naming it.
    code = main([
        "--config", str(repo_root / "config.yaml"), "--set", f"run.results_dir={eval_run.run.results_dir}",
        "--set", f"run.name={eval_run.run.name}", "--set", "eval.tasks=[]",
        "eval", "checkpoint", "--checkpoint", str(broken), "--out", str(layout.eval_result(stage, step)),
    ])
    err = capsys.readouterr().err
    assert code == 1
    assert str(broken) in err and "truncated" in err

    # The other checkpoint's evaluation is unaffected.
    good = layout.eval_result(next_stage, next_step)
    evaluate_checkpoint(eval_run, layout.checkpoint(next_stage, next_step), good)
    assert json.loads(good.read_text())["step"] == next_step


def test_lm_eval_scores_of_the_exported_model_land_in_the_report(eval_run, published, shared_data):
    from tessera.eval.report import write_report

    eval_run.eval.tasks = ["tessera_xcopa_it", "tessera_belebele_ita"]
    eval_run.eval.limit = 3
    eval_run.eval.task_data_dir = shared_data / "eval"
    layout = RunLayout(eval_run.out_dir)
    evaluated = published(eval_run)[-1:]  # test_report shows a row per checkpoint; lm-eval costs seconds
    for stage, step in evaluated:
        checkpoint, out = layout.checkpoint(stage, step), layout.eval_result(stage, step)
        result = evaluate_checkpoint(eval_run, checkpoint, out)
        assert result["errors"] == [] and result["skipped"] == []
        assert set(result["tasks"]) == set(eval_run.eval.tasks)
        assert all(scores["num_samples"] == 3 for scores in result["tasks"].values())

    md = write_report(eval_run).read_text()
    header = "| stage | step | tokens seen | tessera"
    task_header = next(row for row in md.splitlines() if row.startswith(header))
    assert all(task in task_header for task in eval_run.eval.tasks)
    assert md.count("(n=3)") == len(evaluated) * len(eval_run.eval.tasks)


def test_checkpoint_without_tokenizer_is_a_checkpoint_error(eval_run, published):
    layout = RunLayout(eval_run.out_dir)
    stage, step = published(eval_run)[0]
    checkpoint = layout.checkpoint(stage, step)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (checkpoint / name).unlink()
    with pytest.raises(CheckpointError, match=f"{checkpoint}: no loadable tokenizer"):
        evaluate_checkpoint(eval_run, checkpoint, layout.eval_result(stage, step))


def test_context_longer_than_the_model_is_a_config_error(eval_run, published):
    from tessera.errors import ConfigError

    layout = RunLayout(eval_run.out_dir)
    stage, step = published(eval_run)[0]
    eval_run.eval.context_length = 10_000
    with pytest.raises(ConfigError, match="eval.context_length: 10000 exceeds the model's max_seq_len"):
        evaluate_checkpoint(eval_run, layout.checkpoint(stage, step), layout.eval_result(stage, step))


@pytest.mark.gpu
def test_cuda_scores_match_cpu(eval_run, published, shared_data):
    """On a GPU node: the same checkpoint scores the same on CUDA as on CPU, lm-eval included."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    layout = RunLayout(eval_run.out_dir)
    stage, step = published(eval_run)[0]
    eval_run.eval.tasks = ["tessera_xcopa_it"]
    eval_run.eval.limit = 8
    eval_run.eval.task_data_dir = shared_data / "eval"
    results = {}
    for device in ("cpu", "cuda"):
        eval_run.eval.device = device
        results[device] = evaluate_checkpoint(eval_run, layout.checkpoint(stage, step),
                                              layout.eval_result(stage, step).with_suffix(f".{device}.json"))
    assert results["cuda"]["device"].startswith("cuda")
    for lang, cpu_scores in results["cpu"]["intrinsic"].items():
        cuda_bpb = results["cuda"]["intrinsic"][lang]["bits_per_byte"]
        assert cuda_bpb == pytest.approx(cpu_scores["bits_per_byte"], rel=1e-3)
    assert results["cuda"]["tasks"]["tessera_xcopa_it"]["num_samples"] == 8
