"""The release documents as Markdown for people: a table of facts per section, then its tables."""

from __future__ import annotations

from typing import Any

from tessera.release.facts import BASES

__all__ = ["render_markdown", "render_facts", "render_table", "format_value"]


def format_value(value: Any) -> str:
    """A value for a Markdown cell: 4 significant digits for floats, thousands separators for ints."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {format_value(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return "; ".join(format_value(v) for v in value) or "none"
    return str(value)


def _cell(value: Any) -> str:
    return format_value(value).replace("|", "\\|").replace("\n", " ")


def _render_fact_row(f: dict[str, Any]) -> str:
    value = _cell(f["value"]) + (f" {f['unit']}" if f.get("unit") else "")
    extra = " ".join(_cell(f[k]) for k in ("method", "note") if f.get(k))
    source = _cell(f["source"]) + (f" ({extra})" if extra else "")
    return f"| {_cell(f['label'])} | {value} | {f['basis']} | {source} |"


def render_facts(facts: list[dict[str, Any]]) -> list[str]:
    """Facts as one Markdown table: field, value (with unit), basis, source (with method and note)."""
    return ["| Field | Value | Basis | Source |", "|---|---|---|---|", *map(_render_fact_row, facts), ""]


def render_table(t: dict[str, Any]) -> list[str]:
    cols = t["columns"]
    lines = [
        f"**{t['label']}**",
        "",
        "| " + " | ".join(f"{c['label']} ({c['basis']})" for c in cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(_cell(row[c["name"]]) for c in cols) + " |" for row in t["rows"]]
    return [*lines, "", f"Source: {t['source']}", ""]


def render_markdown(document: dict[str, Any]) -> str:
    """The document for people: a table of facts per section, then its tables."""
    legend = "; ".join(f"**{basis}**: {meaning}" for basis, meaning in BASES.items())
    lines = [
        f"# {document['title']}: {document['model']}",
        "",
        f"Generated {document['generated_utc']} by {document['generator']} from the run's reports, data "
        f"manifest, checkpoint, exported weights and config. Basis of each figure: {legend}. "
        f"Machine-readable: `{document['document']}.json` (schema `{document['$schema']}`).",
        "",
    ]
    for section in document["sections"].values():
        lines += [f"## {section['title']}", ""]
        facts = [f for f in section["fields"].values() if "columns" not in f]
        if facts:
            lines += render_facts(facts)
        for t in (f for f in section["fields"].values() if "columns" in f):
            lines += render_table(t)
    return "\n".join(lines).rstrip() + "\n"
