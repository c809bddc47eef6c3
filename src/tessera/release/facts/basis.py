"""How a documented figure came about: its basis, and the two shapes every document field takes.

    fact    {"label", "value", "basis", "source", "unit"?, "method"?, "note"?}
    table   {"label", "columns": [{"name", "label", "basis"}], "rows", "source"}  (one basis per column)

`basis` is one of BASES. A figure is `measured` only when the pipeline observed all of it; any share of
an estimate (CodeCarbon power, PUE, grid intensity) makes it `estimated`; a formula over measured or
configured numbers makes it `computed`; what a person wrote in the config (or the law) is `declared`.
"""

from __future__ import annotations

from typing import Any, Literal

from tessera.energy.summary import Figure

__all__ = ["Basis", "BASES", "fact", "table", "energy_basis", "energy_fact"]

Basis = Literal["measured", "computed", "estimated", "declared"]

BASES: dict[str, str] = {
    "measured": "observed by the pipeline (counted by the data stage, read from hardware counters or files)",
    "computed": "derived by the stated formula from measured figures or the configuration",
    "estimated": "modelled, wholly or in part (CodeCarbon power estimates, PUE, grid intensity)",
    "declared": "written by a person: the run's config, or the law the threshold cites",
}
"""Each basis and what it means; the documents' legend and the schema's enum."""


def fact(
    label: str,
    value: Any,
    basis: Basis,
    source: str,
    *,
    unit: str | None = None,
    method: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """One documented figure or statement with how it came about and where it was read."""
    out: dict[str, Any] = {"label": label, "value": value, "basis": basis, "source": source}
    for key, extra in (("unit", unit), ("method", method), ("note", note)):
        if extra:
            out[key] = extra
    return out


def table(
    label: str, source: str, rows: list[dict[str, Any]], *columns: tuple[str, str, Basis]
) -> dict[str, Any]:
    """Rows under `columns` given as (name, label, basis): each column has one basis (a source's licence
    is declared, its document count measured); keys of a row outside the columns are dropped."""
    names = [name for name, _, _ in columns]
    return {
        "label": label,
        "columns": [{"name": n, "label": lbl, "basis": b} for n, lbl, b in columns],
        "rows": [{n: row.get(n) for n in names} for row in rows],
        "source": source,
    }


def energy_basis(kind: str) -> Basis:
    """The basis of an energy-report figure from its `kind` (measured, estimated, none, or a mix such as
    estimated+measured): measured only if every joule came from a counter, estimated if any did not."""
    parts = set(kind.split("+"))
    if "estimated" in parts:
        return "estimated"
    return "measured" if parts == {"measured"} else "computed"


def energy_fact(figure: Figure, label: str, field: str) -> dict[str, Any]:
    """A figure of reports/energy.json (its `field`, e.g. totals.it_kwh) as a fact; the report's own kind
    travels in `method`."""
    return fact(
        label,
        figure.value,
        energy_basis(figure.kind),
        f"reports/energy.json: {field}",
        unit=figure.unit,
        method=f"{figure.kind}: {figure.method}",
    )
