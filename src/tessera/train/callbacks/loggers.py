"""Where step records go: the stage's metrics.jsonl, TensorBoard event files, a progress line on stdout."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import TextIO

from tessera.io import write_text
from tessera.train.callbacks.base import Callback, StepRecord

__all__ = ["JsonlLogger", "ProgressPrinter", "TensorBoardLogger", "read_metrics"]


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl (a torn last line from a killed job is ignored)."""
    records = []
    if not Path(path).is_file():
        return records
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


class JsonlLogger(Callback):
    """One JSON line per step, flushed as it is written (a SIGKILL loses at most the current line).

    On (re)start the file is cut back to the steps before the resumed step, so that a stage's log has
    each step once and a resumed run's loss curve is the uninterrupted run's."""

    priority = 100

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.file: TextIO | None = None

    def on_start(self, stage: str, step: int, num_steps: int) -> None:
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in on_end

    def on_step_end(self, record: StepRecord) -> None:
        self.file.write(json.dumps(record.as_json(), allow_nan=True) + "\n")
        self.file.flush()

    def on_end(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class TensorBoardLogger(Callback):
    """Every numeric metric as a scalar `train/<name>`, x axis = tokens seen (comparable across stages)."""

    priority = 110

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.writer = None

    def on_start(self, stage: str, step: int, num_steps: int) -> None:
        from torch.utils.tensorboard import SummaryWriter  # optional: imported only when enabled

        self.writer = SummaryWriter(str(self.log_dir), purge_step=None)

    def on_step_end(self, record: StepRecord) -> None:
        for name, value in record.metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(f"{record.stage}/{name}", value, record.tokens_seen)

    def on_end(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class ProgressPrinter(Callback):
    """`[stable] step 40/200 (20%) loss 5.3120 lr 3.00e-03 12.3k tok/s mfu - ETA 00:01:05` every N steps;
    the ETA is to the end of this job's segment (`until_step`), the percentage is of the whole stage."""

    priority = 120

    def __init__(self, every: int, until_step: int, stream: TextIO = sys.stdout) -> None:
        self.every = every
        self.until_step = until_step
        self.stream = stream
        self.t0 = 0.0
        self.start_step = 0

    def on_start(self, stage: str, step: int, num_steps: int) -> None:
        self.t0, self.start_step = time.perf_counter(), step
        print(f"[{stage}] training steps {step + 1}..{self.until_step} of {num_steps}", file=self.stream,
              flush=True)

    def on_step_end(self, record: StepRecord) -> None:
        if record.step % self.every and record.step != self.until_step:
            return
        done = record.step - self.start_step
        elapsed = time.perf_counter() - self.t0
        eta_s = elapsed / max(done, 1) * (self.until_step - record.step)
        m = record.metrics
        mfu = f"{m['mfu']:.1%}" if m.get("mfu") is not None else "-"
        skipped = f" skipped {m['nonfinite_steps']}" if m.get("nonfinite_steps") else ""
        print(
            f"[{record.stage}] step {record.step}/{record.num_steps} ({record.step / record.num_steps:.0%}) "
            f"loss {m['loss']:.4f} lr {m['lr']:.2e} {m.get('tokens_per_s', 0) / 1e3:.1f}k tok/s mfu {mfu}"
            f"{skipped} ETA {time.strftime('%H:%M:%S', time.gmtime(eta_s))}",
            file=self.stream, flush=True,
        )
