"""Energy and emissions (Annex XI 1.2(e)): the energy report's figures, each with its basis and scope.

CodeCarbon's memory figure is machine-wide: it estimates the power of all the node's RAM, whoever uses
it, so on a shared machine it overstates this run's share. The documents flag it, with its share of the
total, rather than let it pass as the run's own consumption.
"""

from __future__ import annotations

from typing import Any

from tessera.energy.records import combine_kinds
from tessera.release.facts.basis import energy_basis, energy_fact, fact, table
from tessera.release.facts.inputs import Facts

__all__ = ["energy", "COMPONENT_SCOPE"]

ENERGY = "reports/energy.json"

COMPONENT_SCOPE = {
    "gpu": "the job's GPUs (NVML counters where measured)",
    "cpu": "the node's CPU package (RAPL counters, or CodeCarbon's estimate: machine-wide)",
    "mem": "machine-wide: CodeCarbon's estimate for all of the node's RAM, not this run's share of it",
}
"""What each component of the energy report covers."""


def _components(facts: Facts) -> dict[str, Any]:
    components = facts.energy.components
    total = sum(f.value for f in components.values()) or 1.0
    rows = [
        {
            "component": c, "kwh": f.value, "share": f.value / total, "kind": f.kind,
            "scope": COMPONENT_SCOPE.get(c, "-"), "method": f.method,
        }
        for c, f in components.items()
    ]  # fmt: skip
    return table(
        "Energy by component, whole pipeline",
        f"{ENERGY}: components (kWh measured by counters or estimated, as 'Kind' says)",
        rows,
        ("component", "Component", "computed"),
        # One basis per column: measured only if every component came from a counter.
        ("kwh", "kWh", energy_basis(combine_kinds({f.kind for f in components.values()}))),
        ("share", "Share of IT energy", "computed"),
        ("kind", "Kind", "computed"),
        ("scope", "Scope", "computed"),
        ("method", "Method", "computed"),
    )


def _sites(facts: Facts) -> dict[str, Any]:
    """Energy per site the run's jobs ran at (a run continued elsewhere has a row per site): IT energy as
    the meters gave it, then that site's PUE and grid. The totals above are the sums of these rows."""
    sites = facts.energy.sites
    rows = [
        {
            "site": s.name, "country": s.country, "it_kwh": s.it_kwh, "it_kind": s.it_kind, "pue": s.pue,
            "facility_kwh": s.facility_kwh, "grid_g_per_kwh": s.grid_g_per_kwh, "co2e_kg": s.co2e_kg,
            "node_hours": s.node_hours,
        }
        for s in sites
    ]  # fmt: skip
    return table(
        "Energy and emissions per site",
        f"{ENERGY}: sites (PUE: config site.pue for the report's own site, the energy records' site.pue for "
        "the others; grid: config energy.grid_intensity[country]; kWh at the wall = IT kWh x PUE; "
        "kg CO2e = kWh at the wall x grid / 1000)",
        rows,
        ("site", "Site", "declared"),
        ("country", "Country", "declared"),
        # One basis per column: measured only if every site's IT energy came from counters.
        ("it_kwh", "IT kWh", energy_basis(combine_kinds({s.it_kind for s in sites}))),
        ("it_kind", "IT energy kind", "computed"),
        ("pue", "PUE", "declared"),
        # PUE and grid intensity are facility and annual averages: what they multiply is an estimate.
        ("facility_kwh", "kWh at the wall", "estimated"),
        ("grid_g_per_kwh", "Grid gCO2e/kWh", "declared"),
        ("co2e_kg", "kg CO2e", "estimated"),
        ("node_hours", "Node-hours", "measured"),
    )


def _memory_flag(facts: Facts) -> dict[str, Any]:
    components = facts.energy.components
    mem, total = components.get("mem"), sum(f.value for f in components.values())
    estimated = mem is not None and mem.kind != "measured" and mem.value > 0
    share = mem.value / total if estimated and total else 0.0
    return fact(
        "Memory energy: machine-wide estimate",
        f"{share:.0%} of the IT energy is CodeCarbon's estimate for the whole node's RAM; on a shared "
        "machine "
        "it overstates this run's share"
        if estimated
        else "no memory estimate in the figures",
        "computed",
        f"{ENERGY}: components.mem over the sum of components",
    )


def energy(facts: Facts) -> dict[str, dict]:
    training, totals = facts.energy.training, facts.energy.totals
    return {
        "training_energy_kwh": energy_fact(
            training.energy_it_kwh, "Energy of training (IT)", "training.energy_it_kwh"
        ),
        "training_gpu_energy_kwh": energy_fact(
            training.energy_gpu_kwh, "GPU energy of training", "training.energy_gpu_kwh"
        ),
        "it_energy_kwh": energy_fact(totals.it_kwh, "Energy, whole pipeline (IT)", "totals.it_kwh"),
        "it_measured_kwh": energy_fact(totals.it_measured_kwh, "of which measured", "totals.it_measured_kwh"),
        "it_estimated_kwh": energy_fact(
            totals.it_estimated_kwh, "of which estimated", "totals.it_estimated_kwh"
        ),
        "facility_energy_kwh": energy_fact(
            totals.facility_kwh, "Facility energy (IT x PUE)", "totals.facility_kwh"
        ),
        "co2e_kg": energy_fact(totals.co2e_kg, "Emissions", "totals.co2e_kg"),
        "memory_scope": _memory_flag(facts),
        "components": _components(facts),
        "sites": _sites(facts),
        "notes": fact("What the figures leave out", facts.energy.notes, "computed", f"{ENERGY}: notes"),
    }
