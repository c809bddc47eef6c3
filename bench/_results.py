"""Benchmarks record their tables in bench/RESULTS.md, each in its own marked section, with the machine."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    """One line naming the machine, the commit and the date (GPU name when CUDA is there)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f", GPU {torch.cuda.get_device_name(0)}"
        torch_version = torch.__version__
    except ImportError:
        torch_version = "n/a"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,  # noqa: S607 git from PATH, as the developer runs it
                                cwd=RESULTS.parent).stdout.strip()
    except OSError:
        commit = "?"
    return (f"{cpu}, {os.cpu_count()} cores{gpu}; torch {torch_version}; commit {commit}; "
            f"{dt.date.today().isoformat()}")


def update_section(name: str, markdown: str) -> None:
    """Replace (or append) the section `name` of bench/RESULTS.md."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    header = "# Benchmark results\n\nEach section is rewritten by its benchmark.\n"
    text = RESULTS.read_text() if RESULTS.exists() else header
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
