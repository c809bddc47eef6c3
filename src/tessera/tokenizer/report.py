"""`tessera tokenizer report`: reports/tokenizer.{md,csv,png}, our tokenizer's fertility next to references.

Measured on each language's validation split and, when `tokenizer.flores_dir` holds FLORES-200 devtest,
on those line-aligned sentences (the same content in every language, so only there do differences
between languages measure the tokenizer rather than the texts). Reference tokenizers that cannot be
loaded here (a path a fresh clone lacks) are skipped with a note in the report, never an error.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tessera.config import RunConfig
from tessera.data.plan import split_shards
from tessera.data.shards import read_shard
from tessera.data.tokenize import require_shard
from tessera.io import atomic_path, write_csv, write_text
from tessera.layout import RunLayout
from tessera.tokenizer.fertility import Encoder, Fertility, measure, parity_ratio, token_counter
from tessera.tokenizer.files import read_tokenizer
from tessera.tokenizer.train import TRAINING_RECORD

__all__ = ["write_report", "load_reference", "OURS"]

log = logging.getLogger(__name__)

OURS = "tessera"
VALIDATION_MAX_BYTES = 4_000_000
"""Per language; fertility is stable long before this, and the Python-side references are slow."""
CSV_FIELDS = [
    "dataset",
    "tokenizer",
    "language",
    "tokens_per_word",
    "bytes_per_token",
    "num_tokens",
    "num_words",
    "num_bytes",
    "parity_ratio",
]

def load_reference(name: str, ref: str) -> tuple[Encoder | None, str | None]:
    """(token counter, None), or (None, why it was skipped)."""
    if ref == "mistral-common":
        try:
            from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

            spm = MistralTokenizer.v3().instruct_tokenizer.tokenizer
        except ImportError as err:
            return None, f"reference {name} (mistral-common) skipped: {err}"
        return (lambda texts: [len(spm.encode(t, bos=False, eos=False)) for t in texts]), None
    path = Path(ref)
    if not path.exists():
        return None, f"reference {name} skipped: {path} does not exist (developer machines and CI have it)"
    return token_counter(read_tokenizer(path, f"fix tokenizer.reference.{name} or remove it")), None


def _validation_texts(shards: list[Path]) -> list[str]:
    texts, size = [], 0
    for shard in shards:
        for doc in read_shard(require_shard(shard)):
            texts.append(doc["text"])
            size += len(doc["text"].encode("utf-8"))
            if size >= VALIDATION_MAX_BYTES:
                return texts
    return texts


def _datasets(cfg: RunConfig, notes: list[str]) -> dict[str, dict[str, list[str]]]:
    languages = sorted(cfg.data.languages)
    datasets = {
        "validation": {lang: _validation_texts(split_shards(cfg, lang, "validation")) for lang in languages}
    }
    flores = cfg.tokenizer.flores_dir
    devtest = flores / "devtest" if flores else None
    if devtest is None:
        notes.append("FLORES-200 skipped: tokenizer.flores_dir is not set.")
    elif not devtest.is_dir():
        notes.append(f"FLORES-200 skipped: {devtest} does not exist (developer machines and CI have it).")
    else:
        files = {lang: devtest / f"{lang}.devtest" for lang in languages}
        missing = sorted(lang for lang, f in files.items() if not f.exists())
        if missing:
            notes.append(f"FLORES-200 has no devtest file for {', '.join(missing)}.")
        datasets["flores200-devtest"] = {
            lang: f.read_text(encoding="utf-8").splitlines() for lang, f in files.items() if f.exists()
        }
    return datasets


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _plot(results: dict[str, dict[str, dict[str, Fertility]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, (dataset, by_tokenizer) in zip(axes[0], results.items(), strict=True):
        languages = sorted({lang for per_lang in by_tokenizer.values() for lang in per_lang})
        width = 0.8 / max(len(by_tokenizer), 1)
        for i, (name, per_lang) in enumerate(by_tokenizer.items()):
            xs = [j + i * width for j, lang in enumerate(languages) if lang in per_lang]
            ys = [per_lang[lang].tokens_per_word for lang in languages if lang in per_lang]
            ax.bar(xs, ys, width, label=f"{name} (parity {_parity(per_lang):.2f})")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(languages))], languages)
        ax.set_ylabel("tokens per whitespace word")
        ax.set_title(dataset)
        ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _parity(per_lang: dict[str, Fertility]) -> float:
    return parity_ratio({lang: f.tokens_per_word for lang, f in per_lang.items()})


def write_report(cfg: RunConfig) -> Path:
    """Measure every tokenizer on every dataset; write reports/tokenizer.{md,csv,png}."""
    layout = RunLayout(cfg.out_dir)
    notes: list[str] = []
    ours = read_tokenizer(layout.tokenizer_dir / "tokenizer.json", "run `tessera tokenizer train` first")
    counters: dict[str, Encoder] = {OURS: token_counter(ours)}
    for name, ref in cfg.tokenizer.reference.items():
        counter, note = load_reference(name, ref)
        if counter is None:
            notes.append(note)
        else:
            counters[name] = counter
    datasets = _datasets(cfg, notes)
    results = {
        dataset: {
            name: {lang: measure(count, texts) for lang, texts in by_lang.items() if texts}
            for name, count in counters.items()
        }
        for dataset, by_lang in datasets.items()
    }

    reports = layout.reports_dir
    rows = [
        {
            "dataset": dataset,
            "tokenizer": name,
            "language": lang,
            "tokens_per_word": f"{f.tokens_per_word:.4f}",
            "bytes_per_token": f"{f.bytes_per_token:.4f}",
            "num_tokens": f.num_tokens,
            "num_words": f.num_words,
            "num_bytes": f.num_bytes,
            "parity_ratio": f"{_parity(per_lang):.4f}",
        }
        for dataset, by_tokenizer in results.items()
        for name, per_lang in by_tokenizer.items()
        for lang, f in per_lang.items()
    ]
    write_csv(reports / "tokenizer.csv", rows, CSV_FIELDS)
    _plot(results, reports / "tokenizer.png")
    write_text(reports / "tokenizer.md", _markdown(cfg, layout, ours.get_vocab_size(), results, notes))
    for note in notes:
        log.warning(note)
    return reports / "tokenizer.md"


def _markdown(cfg: RunConfig, layout: RunLayout, vocab: int, results: dict, notes: list[str]) -> str:
    out = [
        "# Tokenizer report",
        "",
        f"Run `{cfg.run.name}`: byte-level BPE, {vocab} tokens. Fertility = tokens per whitespace word "
        "(lower is better); bytes per token (higher is better); parity = max/min tokens per word over "
        "languages (1 = every language costs the same).",
        "",
    ]
    for dataset, by_tokenizer in results.items():
        languages = sorted({lang for per_lang in by_tokenizer.values() for lang in per_lang})
        for title, attr in (("tokens per word", "tokens_per_word"), ("bytes per token", "bytes_per_token")):
            rows = []
            for name, per_lang in by_tokenizer.items():
                cells = [
                    f"{getattr(per_lang[lang], attr):.2f}" if lang in per_lang else "-" for lang in languages
                ]
                parity = [f"{_parity(per_lang):.2f}"] if attr == "tokens_per_word" else []
                rows.append([name, *cells, *parity])
            header = ["tokenizer", *languages, *(["parity (max/min)"] if attr == "tokens_per_word" else [])]
            out += [f"## {dataset}: {title}", "", _markdown_table(header, rows), ""]
    record_path = layout.tokenizer_dir / TRAINING_RECORD
    if record_path.exists():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        out += [
            "## Language weights of the BPE sample (balancing rounds)",
            "",
            f"Sample: {record['sample_bytes']} bytes; round {record['chosen_round']} was kept (lowest parity "
            "on held-out training text).",
            "",
        ]
        languages = sorted(record["rounds"][0]["weights"])
        rows = [
            [
                str(i),
                *[f"{r['weights'][k]:.3f} / {r['tokens_per_word'][k]:.2f}" for k in languages],
                f"{r['parity_ratio']:.3f}",
            ]
            for i, r in enumerate(record["rounds"])
        ]
        out += [
            _markdown_table(["round", *[f"{k} weight / fertility" for k in languages], "parity"], rows),
            "",
        ]
    if notes:
        out += ["## Notes", "", *[f"- {note}" for note in notes], ""]
    out += ["![fertility per language](tokenizer.png)", ""]
    return "\n".join(out)
