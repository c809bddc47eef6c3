"""The fertility report: our tokenizer next to GPT-2 and Mistral, with parity ratios; missing inputs noted."""

from __future__ import annotations

import csv
from pathlib import Path

from tessera.layout import RunLayout
from tessera.tokenizer.report import OURS, write_report


def _rows(cfg) -> list[dict]:
    with open(RunLayout(cfg.out_dir).reports_dir / "tokenizer.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_report_next_to_gpt2_and_mistral(trained, shared_data: Path):
    cfg, _ = trained
    md = write_report(cfg).read_text()
    reports = RunLayout(cfg.out_dir).reports_dir
    assert (reports / "tokenizer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = _rows(cfg)
    languages = sorted(cfg.data.languages)
    for dataset in ("validation", "flores200-devtest"):
        for tokenizer in (OURS, "gpt2", "mistral"):
            got = [r for r in rows if r["dataset"] == dataset and r["tokenizer"] == tokenizer]
            assert sorted(r["language"] for r in got) == languages
            fertility = {r["language"]: float(r["tokens_per_word"]) for r in got}
            parity = max(fertility.values()) / min(fertility.values())
            assert all(abs(float(r["parity_ratio"]) - parity) < 1e-3 for r in got)
            assert all(float(r["bytes_per_token"]) > 1 for r in got)
    # The published FLORES devtest figures for GPT-2 (shared/data/SOURCES.md) are reproduced.
    gpt2 = {
        r["language"]: float(r["tokens_per_word"])
        for r in rows
        if r["dataset"] == "flores200-devtest" and r["tokenizer"] == "gpt2"
    }
    assert round(gpt2["ita"], 2) == 2.24 and round(gpt2["eng"], 2) == 1.23
    assert "parity (max/min)" in md and "| gpt2 |" in md and "| mistral |" in md
    assert "balancing rounds" in md


def test_missing_references_and_flores_are_notes(trained, tmp_path):
    cfg, _ = trained
    saved = (cfg.tokenizer.reference, cfg.tokenizer.flores_dir)
    cfg.tokenizer.reference = {"gone": str(tmp_path / "nope" / "tokenizer.json")}
    cfg.tokenizer.flores_dir = tmp_path / "no-flores"
    try:
        md = write_report(cfg).read_text()
    finally:
        cfg.tokenizer.reference, cfg.tokenizer.flores_dir = saved
    assert "reference gone skipped" in md and "FLORES-200 skipped" in md
    assert {r["tokenizer"] for r in _rows(cfg)} == {OURS}
    assert {r["dataset"] for r in _rows(cfg)} == {"validation"}
