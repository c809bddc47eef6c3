"""The figures in the release documents are the figures of the energy, evaluation and data reports."""

from __future__ import annotations

import json

import pytest

from tessera.energy.summary import EnergySummary
from tessera.layout import RunLayout
from tessera.model.checkpoint import read_checkpoint_meta
from tessera.model.config import num_active_params, num_params
from tessera.release.facts import final_checkpoint_dir


def _documents(cfg) -> dict[str, dict]:
    folder = RunLayout(cfg.out_dir).release_dir / "ai_act"
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}


def _fields(doc: dict, section: str) -> dict:
    return doc["sections"][section]["fields"]


def _reports(cfg) -> tuple[EnergySummary, dict, dict]:
    layout = RunLayout(cfg.out_dir)
    read = lambda p: json.loads(p.read_text())  # noqa: E731
    return (
        EnergySummary.read(layout.reports_dir / "energy.json"),
        read(layout.reports_dir / "eval.json"),
        read(layout.manifest),
    )


def test_energy_and_compute_figures_equal_the_energy_report(built_release):
    energy, _, _ = _reports(built_release)
    tech = _documents(built_release)["technical_documentation"]
    en, comp = _fields(tech, "energy_consumption"), _fields(tech, "computational_resources")
    assert en["it_energy_kwh"]["value"] == energy.totals.it_kwh.value
    assert en["it_measured_kwh"]["value"] == energy.totals.it_measured_kwh.value
    assert en["it_estimated_kwh"]["value"] == energy.totals.it_estimated_kwh.value
    assert en["facility_energy_kwh"]["value"] == energy.totals.facility_kwh.value
    assert en["co2e_kg"]["value"] == energy.totals.co2e_kg.value
    assert en["training_energy_kwh"]["value"] == energy.training.energy_it_kwh.value
    assert en["training_gpu_energy_kwh"]["value"] == energy.training.energy_gpu_kwh.value
    assert {r["component"]: r["kwh"] for r in en["components"]["rows"]} == {
        c: f.value for c, f in energy.components.items()
    }
    assert comp["training_flops"]["value"] == energy.training.flops.value
    assert comp["gpu_hours"]["value"] == energy.totals.gpu_hours.value
    assert comp["wall_time_s"]["value"] == energy.totals.wall_time_s.value
    train_jobs = [j for j in energy.jobs if j.rule == "train"]
    assert comp["training_gpu_hours"]["value"] == pytest.approx(sum(j.gpu_hours for j in train_jobs))
    assert comp["training_time_s"]["value"] == pytest.approx(sum(j.time_s for j in train_jobs))
    thresholds = _documents(built_release)["compute_thresholds"]
    assert _fields(thresholds, "training_compute")["training_flops"]["value"] == energy.training.flops.value
    stages = _fields(tech, "training_process")["stages"]["rows"]
    assert [(r["stage"], r["tokens"], r["flops"]) for r in stages] == [
        (s.stage, s.tokens, s.flops) for s in energy.training.per_stage
    ]
    assert _fields(tech, "training_process")["tokens"]["value"] == energy.training.tokens.value


def test_evaluation_figures_equal_the_eval_report(built_release):
    _, evaluation, _ = _reports(built_release)
    final = evaluation["final"]
    ev = _fields(_documents(built_release)["technical_documentation"], "evaluation")
    assert {r["language"]: r["bits_per_byte"] for r in ev["intrinsic"]["rows"]} == {
        lang: s["bits_per_byte"] for lang, s in final["intrinsic"].items()
    }
    assert {r["language"]: r["perplexity"] for r in ev["intrinsic"]["rows"]} == {
        lang: s["perplexity"] for lang, s in final["intrinsic"].items()
    }
    assert [(r["task"], r["metric"], r["value"], r["stderr"]) for r in ev["tasks"]["rows"]] == [
        (task, "acc", m["acc"], m["acc_stderr"]) for task, m in final["tasks"].items()
    ]
    assert ev["checkpoint"]["value"] == f"{final['stage']} step {final['step']}"
    # The final checkpoint's skipped task is reported, not silently dropped.
    assert [s["task"] for s in ev["not_scored"]["value"]] == ["tessera_belebele_ita"]


def test_data_figures_equal_the_manifest(built_release):
    _, _, manifest = _reports(built_release)
    docs = _documents(built_release)
    summary = docs["training_content_summary"]
    general, processing = _fields(summary, "general_information"), _fields(summary, "data_processing")
    assert {r["language"]: (r["documents_out"], r["train_bytes"]) for r in general["languages"]["rows"]} == {
        lang: (v["documents_out"], v["splits"]["train"]["bytes"]) for lang, v in manifest["languages"].items()
    }
    sources = _fields(summary, "data_sources")["sources"]["rows"]
    assert {
        r["name"]: (r["documents_in"], r["documents_out"], r["bytes_out"], r["license"]) for r in sources
    } == {
        name: (s["documents_in"], s["documents_out"], s["bytes_out"], s["license"])
        for name, s in manifest["sources"].items()
    }
    pii = {
        kind: sum(s["pii_redactions"][kind] for s in manifest["sources"].values())
        for kind in next(iter(manifest["sources"].values()))["pii_redactions"]
    }
    assert processing["personal_data"]["value"] == pii
    assert processing["dropped"]["value"]["exact_duplicate"] == sum(
        s["dropped"]["exact_duplicate"] for s in manifest["sources"].values()
    )
    assert processing["documents_in"]["value"] == manifest["totals"]["documents_in"]
    assert general["dataset_bytes"]["value"] == manifest["totals"]["bytes_out"]
    created = manifest["created_utc"]
    assert general["latest_collection"]["value"] == f"{created[5:7]}/{created[:4]}"
    tdm = {r["name"]: r["tdm_opt_out"] for r in processing["tdm_opt_out"]["rows"]}
    assert tdm == {name: s["tdm_opt_out"] for name, s in manifest["sources"].items()}


def test_model_figures_come_from_the_released_checkpoint(built_release):
    model_cfg, meta = read_checkpoint_meta(final_checkpoint_dir(built_release))
    props = _fields(_documents(built_release)["technical_documentation"], "model_properties")
    assert props["total_parameters"]["value"] == num_params(model_cfg)
    assert props["active_parameters"]["value"] == num_active_params(model_cfg)
    # Trained at 128 (both stages), though the positions reach 256: the documents say both, apart.
    assert props["context_length"]["value"] == 128 == max(s.seq_len for s in built_release.train.stages)
    assert props["max_context_length"]["value"] == model_cfg.max_seq_len == 256
    assert "beyond 128 were never trained" in props["max_context_length"]["note"]
    assert props["hf_architecture"]["value"] == "Qwen3MoeForCausalLM"
    training = _fields(_documents(built_release)["technical_documentation"], "training_process")
    assert training["tokens_seen"]["value"] == meta["tokens_seen"]


def test_every_field_says_how_it_came_about(built_release):
    tech = _documents(built_release)["technical_documentation"]
    general, energy = _fields(tech, "general"), _fields(tech, "energy_consumption")
    assert general["provider_name"]["basis"] == "declared"
    assert general["provider_name"]["source"] == "config release.provider"
    # GPU energy read from NVML counters is measured; CodeCarbon's CPU estimate and the PUE make the
    # totals estimated, and the report's own label travels along in `method`.
    assert energy["training_gpu_energy_kwh"]["basis"] == "measured"
    assert energy["it_estimated_kwh"]["basis"] == "estimated"
    assert energy["it_energy_kwh"]["method"].startswith("estimated+measured")
    assert _fields(tech, "computational_resources")["training_flops"]["basis"] == "computed"
    columns = {c["name"]: c["basis"] for c in _fields(tech, "training_data")["sources"]["columns"]}
    assert columns["license"] == "declared" and columns["documents_out"] == "measured"
    # A table column has one basis: GPU measured and CPU estimated make the kWh column estimated.
    components = {c["name"]: c["basis"] for c in energy["components"]["columns"]}
    assert components["kwh"] == "estimated"


def test_tokenizer_fertility_equals_the_tokenizer_report(built_release):
    import csv

    path = RunLayout(built_release.out_dir).reports_dir / "tokenizer.csv"
    ours = {
        r["language"]: float(r["tokens_per_word"])
        for r in csv.DictReader(path.open())
        if r["tokenizer"] == "tessera"
    }
    props = _fields(_documents(built_release)["technical_documentation"], "model_properties")
    assert {r["language"]: r["tokens_per_word"] for r in props["tokenizer"]["rows"]} == ours


HISTORY = [
    {"stage": "stable", "site": "leonardo", "gpu_type": "A100-64GB", "num_nodes": 2, "world_size": 8,
     "expert_parallel_size": 2, "zero_stage": 2, "first_step": 1, "last_step": 60, "resume_changes": []},
    {"stage": "anneal", "site": "marenostrum", "gpu_type": None, "num_nodes": 1, "world_size": 2,
     "expert_parallel_size": 2, "zero_stage": 2, "first_step": 1, "last_step": 40,
     "resume_changes": ["site leonardo -> marenostrum"]},
]  # fmt: skip


def test_the_recorded_training_history_is_documented_per_site_and_layout(release_run):
    from tests.release.conftest import documents_of

    cfg = release_run()
    meta_path = final_checkpoint_dir(cfg) / "tessera.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "history": HISTORY}))
    training = _fields(documents_of(cfg)["technical_documentation"], "training_process")
    history = training["history"]
    assert history["rows"] == HISTORY
    assert {c["basis"] for c in history["columns"] if c["name"] != "stage"} == {"measured"}
    assert "recorded by the trainer" in history["source"]
    # 'auto' precision resolved per span: bf16 on the GPU span, fp32 on the CPU one.
    assert training["precision"]["value"] == "bf16+fp32"
    site = _fields(documents_of(cfg)["technical_documentation"], "computational_resources")["site"]
    assert site["value"].startswith("leonardo, marenostrum") and site["basis"] == "measured"
