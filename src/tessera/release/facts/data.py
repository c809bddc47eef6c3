"""The training data (Annex XI 1.2(c), Annex XII 2(c), the public summary's sections 1.3-3): sources with
their declared provenance and measured counts, and what training actually drew from each language.

Tokens per language are not the corpus's bytes: the loader draws languages by each stage's mixture, so
a small language repeated by a heavy weight is a large share of training. The loader's draw is a pure
function of (seed, step) (tessera.data.loader), so the release replays it for every stage's steps
instead of trusting the manifest's sizes: basis `computed`, method named.
"""

from __future__ import annotations

from typing import Any

from tessera.data.loader import sequences_per_language, stage_seed
from tessera.release.facts.basis import fact, table
from tessera.release.facts.inputs import Facts

__all__ = ["source_category", "sources_table", "languages_table", "tokens_per_language", "data_counts"]

MANIFEST = "data/manifest.json"
REPLAY = (
    "replay of tessera.data.loader's draw (sequences_per_language) for steps x batch_size sequences of "
    "each stage, with the stage's mixture and seed; tokens = sequences x seq_len"
)


def source_category(facts: Facts, name: str) -> str:
    r = facts.cfg.release
    return r.source_categories.get(name, r.default_source_category)


def tokens_per_language(facts: Facts) -> dict[str, dict[str, int]]:
    """Tokens trained per stage and language, as the loader drew them (every stage of the released
    checkpoint ran to its last step: a stage starts only from the previous one's final state)."""
    out: dict[str, dict[str, int]] = {}
    for index, stage in enumerate(facts.cfg.train.stages):
        seed = stage_seed(facts.cfg.run.seed, index)
        drawn = sequences_per_language(stage.mixture, seed, stage.num_steps * stage.batch_size)
        out[stage.name] = {lang: n * stage.seq_len for lang, n in drawn.items()}
    return out


def _trained_by_language(facts: Facts) -> dict[str, int]:
    total: dict[str, int] = {}
    for per_stage in tokens_per_language(facts).values():
        for lang, n in per_stage.items():
            total[lang] = total.get(lang, 0) + n
    return total


def sources_table(facts: Facts) -> dict[str, Any]:
    """Every source with its declared provenance, the data stage's counts, and the tokens trained on it
    where its language has no other source (the loader draws from a language's stream, not a source's)."""
    trained = _trained_by_language(facts)
    sources = facts.manifest["sources"]
    per_language: dict[str, int] = {}
    for s in sources.values():
        per_language[s["language"]] = per_language.get(s["language"], 0) + 1
    rows = [
        {
            "name": name,
            "category": source_category(facts, name),
            **s,
            "tokens_trained": trained.get(s["language"], 0) if per_language[s["language"]] == 1 else None,
        }
        for name, s in sources.items()
    ]
    return table(
        "Data sources",
        f"{MANIFEST}: sources (declared in config data.sources; counts by the data stage); tokens trained: "
        f"{REPLAY} ('-' where a language has several sources: its stream mixes them)",
        rows,
        ("name", "Source", "declared"),
        ("category", "Category", "declared"),
        ("kind", "Kind", "declared"),
        ("language", "Language", "declared"),
        ("license", "Licence", "declared"),
        ("license_basis", "Licence basis", "declared"),
        ("origin", "Origin", "declared"),
        ("tdm_opt_out", "TDM opt-out handling", "declared"),
        ("documents_in", "Documents read", "measured"),
        ("documents_out", "Documents kept", "measured"),
        ("bytes_out", "Bytes kept", "measured"),
        ("tokens_trained", "Tokens trained", "computed"),
    )


def languages_table(facts: Facts) -> dict[str, Any]:
    """Per language: the corpus the data stage kept, and the tokens training drew from it, per stage."""
    per_stage = tokens_per_language(facts)
    trained = _trained_by_language(facts)
    total = sum(trained.values()) or 1
    rows = [
        {
            "language": lang,
            "documents_out": v["documents_out"],
            "train_bytes": v["splits"]["train"]["bytes"],
            **{f"tokens_{stage}": drawn.get(lang, 0) for stage, drawn in per_stage.items()},
            "tokens_trained": trained.get(lang, 0),
            "share": trained.get(lang, 0) / total,
        }
        for lang, v in facts.manifest["languages"].items()
    ]
    stage_columns = [(f"tokens_{s}", f"Tokens trained, {s}", "computed") for s in per_stage]
    return table(
        "Training data by language (modality: text)",
        f"{MANIFEST}: languages (documents, train-split bytes); tokens: {REPLAY}",
        rows,
        ("language", "Language", "declared"),
        ("documents_out", "Documents kept (all splits)", "measured"),
        ("train_bytes", "Bytes in train split", "measured"),
        *stage_columns,
        ("tokens_trained", "Tokens trained", "computed"),
        ("share", "Share of tokens trained", "computed"),
    )


def _summed(facts: Facts, group: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in facts.manifest["sources"].values():
        for key, n in s.get(group, {}).items():
            out[key] = out.get(key, 0) + n
    return out


def data_counts(facts: Facts) -> dict[str, dict]:
    """Totals of the data stage's filters over all sources (the manifest's per-source counters)."""
    totals, settings = facts.manifest["totals"], facts.manifest["settings"]
    src = MANIFEST
    return {
        "documents_in": fact("Documents read", totals["documents_in"], "measured", f"{src}: totals"),
        "documents_out": fact("Documents kept", totals["documents_out"], "measured", f"{src}: totals"),
        "bytes_in": fact("Bytes read", totals["bytes_in"], "measured", f"{src}: totals", unit="bytes"),
        "bytes_out": fact("Bytes kept", totals["bytes_out"], "measured", f"{src}: totals", unit="bytes"),
        "dropped": fact(
            "Documents dropped, by filter",
            _summed(facts, "dropped"),
            "measured",
            f"{src}: sources.*.dropped (summed)",
        ),
        "pii_redactions": fact(
            "Personal data redacted, by kind",
            _summed(facts, "pii_redactions"),
            "measured",
            f"{src}: sources.*.pii_redactions (summed, kept documents)",
        ),
        "cleanup": fact(
            "Documents changed by clean-up",
            _summed(facts, "cleanup"),
            "measured",
            f"{src}: sources.*.cleanup (summed)",
        ),
        "filters": fact("Filter settings", settings["filters"], "declared", f"{src}: settings.filters"),
        "allowed_licenses": fact(
            "Licences allowed", settings["allowed_licenses"], "declared", f"{src}: settings.allowed_licenses"
        ),
        "collected_utc": fact(
            "Data collected (data stage run)",
            facts.manifest["created_utc"],
            "measured",
            f"{src}: created_utc",
        ),
        "bias_detection": fact(
            "Measures to detect unsuitable sources and identifiable biases",
            "sources are admitted only with an allowed licence and declared provenance; language "
            "identification, quality and duplicate filters drop unsuitable documents (counts above). No "
            "bias detection runs in the pipeline; the per-language evaluation (gap to the best language) is "
            "the only measured disparity",
            "computed",
            "tessera.data (filters, admission); reports/eval.json (per-language scores)",
        ),
    }
