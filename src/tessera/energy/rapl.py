"""CPU package and DRAM energy from the kernel's RAPL counters (/sys/class/powercap/intel-rapl*).

The counters are per socket and count microjoules, wrapping at `max_energy_range_uj`; since Linux 5.10
`energy_uj` is readable by root only on most distributions, so this is the measured path where a site
opens it and CodeCarbon's estimate is the fallback. AMD Zen CPUs expose the same interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RaplCounters", "RaplDomain"]

POWERCAP = Path("/sys/class/powercap")


@dataclass
class RaplDomain:
    path: Path
    name: str
    """'package-0', 'dram', ... as the kernel names it."""
    max_uj: int
    last_uj: int
    total_uj: int = 0

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text())

    def advance(self) -> None:
        now = self.read_uj()
        delta = now - self.last_uj
        if delta < 0:  # the counter wrapped once since the last read
            delta += self.max_uj
        self.total_uj += delta
        self.last_uj = now


class RaplCounters:
    """Readable package (CPU) and DRAM domains; `available` is False with `reason` when none are."""

    def __init__(self, package: list[RaplDomain], dram: list[RaplDomain], reason: str):
        self.package = package
        self.dram = dram
        self.reason = reason

    @classmethod
    def open(cls, root: Path = POWERCAP) -> RaplCounters:
        if not root.is_dir():
            return cls([], [], f"{root} is absent (no RAPL powercap driver, e.g. a VM or container)")
        package: list[RaplDomain] = []
        dram: list[RaplDomain] = []
        unreadable = []
        # Top-level zones are sockets (intel-rapl:N, name package-N); their subzones (intel-rapl:N:M)
        # include dram. Core/uncore subzones are inside the package figure and are skipped.
        for zone in sorted(root.glob("intel-rapl:*")):
            try:
                name = (zone / "name").read_text().strip()
                domain = RaplDomain(zone, name, int((zone / "max_energy_range_uj").read_text()), 0)
                domain.last_uj = domain.read_uj()
            except (OSError, ValueError):
                unreadable.append(zone.name)
                continue
            if name.startswith("package"):
                package.append(domain)
            elif name == "dram":
                dram.append(domain)
        if not package:
            why = f"{', '.join(unreadable)} not readable (root only since Linux 5.10)" if unreadable else (
                f"no package domain under {root}")
            return cls([], [], why)
        return cls(package, dram, "")

    @property
    def available(self) -> bool:
        return bool(self.package)

    def read_j(self) -> tuple[float, float | None]:
        """(CPU package joules, DRAM joules or None) since `open`."""
        for domain in (*self.package, *self.dram):
            domain.advance()
        cpu = sum(d.total_uj for d in self.package) / 1e6
        mem = sum(d.total_uj for d in self.dram) / 1e6 if self.dram else None
        return cpu, mem
