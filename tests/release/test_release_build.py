"""The release folder: a transformers model that loads, the model card's Hub header, checksums, atomicity."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
import yaml

from tessera.errors import ReleaseError
from tessera.io import write_json
from tessera.layout import RunLayout
from tessera.model.checkpoint import load_checkpoint
from tessera.release.build import CHECKSUMS_FILE, build_release
from tessera.release.facts import final_checkpoint_dir
from tessera.release.validate import SCHEMA_FILES


def _release(cfg):
    return RunLayout(cfg.out_dir).release_dir


def test_release_folder_holds_model_tokenizer_card_and_documents(built_release):
    folder = _release(built_release)
    for name in (
        "model.safetensors",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
        CHECKSUMS_FILE,
    ):
        assert (folder / name).is_file(), name
    for kind in SCHEMA_FILES:
        assert (folder / "ai_act" / f"{kind}.json").is_file() and (folder / "ai_act" / f"{kind}.md").is_file()
    assert sorted(p.name for p in (folder / "ai_act" / "schemas").iterdir()) == sorted(
        ["common.schema.json", *SCHEMA_FILES.values()]
    )
    assert not list(folder.parent.glob(".release.*"))  # no temporary folder left behind


def test_every_file_has_its_sha256(built_release):
    folder = _release(built_release)
    listed = {}
    for line in (folder / CHECKSUMS_FILE).read_text().splitlines():
        digest, path = line.split("  ", 1)
        listed[path] = digest
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {CHECKSUMS_FILE}
    assert set(listed) == files
    for path, digest in listed.items():
        assert hashlib.sha256((folder / path).read_bytes()).hexdigest() == digest, path


def test_model_loads_with_auto_classes_and_matches_the_checkpoint(built_release):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = _release(built_release)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    hf_model = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = tokenizer("In principio Iddio creò il cielo e la terra.", return_tensors="pt")["input_ids"]
    assert tokenizer.decode(ids[0]) == "In principio Iddio creò il cielo e la terra."
    tessera_model, _ = load_checkpoint(final_checkpoint_dir(built_release))
    with torch.no_grad():
        expected_BTV = tessera_model.eval()(ids).logits_BTV
        got_BTV = hf_model(ids).logits
    torch.testing.assert_close(got_BTV, expected_BTV, rtol=1e-4, atol=1e-4)


def test_model_card_has_the_hub_header_with_the_evaluation_results(built_release):
    text = (_release(built_release) / "README.md").read_text()
    assert text.startswith("---\n")
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["license"] == "apache-2.0"
    assert header["language"] == ["it", "en", "fr", "es", "de"]
    assert header["pipeline_tag"] == "text-generation" and header["library_name"] == "transformers"
    assert "base_model" not in header  # trained from scratch
    assert header["datasets"] == [s.name for s in built_release.data.sources]
    assert {"moe", "qwen3_moe"} <= set(header["tags"])
    eval_report = json.loads((RunLayout(built_release.out_dir).reports_dir / "eval.json").read_text())
    final = eval_report["final"]
    results = header["model-index"][0]["results"]
    bpb = {
        r["dataset"]["config"]: r["metrics"][0]["value"]
        for r in results
        if r["metrics"][0]["type"] == "bits_per_byte"
    }
    assert bpb == {lang: s["bits_per_byte"] for lang, s in final["intrinsic"].items()}
    acc = [r["metrics"][0]["value"] for r in results if r["dataset"]["type"] == "tessera_xcopa_it"]
    assert acc == [final["tasks"]["tessera_xcopa_it"]["acc"]]
    assert header["model-index"][0]["name"] == "tessera-test"
    assert "](ai_act/training_content_summary.md)" in text and "Tessera Test Consortium" in text


def test_failed_release_keeps_the_previous_one(release_run):
    cfg = release_run()
    build_release(cfg)
    folder = _release(cfg)
    before = (folder / CHECKSUMS_FILE).read_text()
    manifest = RunLayout(cfg.out_dir).manifest
    data = json.loads(manifest.read_text())
    data["sources"]["bible_ita_diodati"]["license"] = "CC-BY-NC-4.0"
    write_json(manifest, data)
    with pytest.raises(ReleaseError, match="bible_ita_diodati"):
        build_release(cfg)
    assert (folder / CHECKSUMS_FILE).read_text() == before


def test_bf16_release_halves_the_weights(release_run):
    from safetensors import safe_open

    cfg = release_run(dtype="bfloat16")
    folder = build_release(cfg)
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert {f.get_slice(name).get_dtype() for name in f.keys()} == {"BF16"}
    assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"
