"""Run-state save/load: time per GB and peak extra memory per rank, layout-independent format against
the per-rank pickles tessera wrote before (module state dict + DeepSpeed optimizer partition per rank).

Two gloo ranks on CPU train the demo-x4 model (d 256, expert hidden 512) with expert parallel size 2 and
ZeRO-2 for one step, then, alternating in each round: today's format (`save_state`, then `verify_state`
+ `load_state` into the same engine) and the old one (`torch.save` of {model, optimizer.state_dict(),
rng}; `torch.load` + `load_state_dict`). A sampler thread reads each rank's anonymous resident memory
(RssAnon: what the process allocated, not the page cache of mmapped files) every 2 ms; the figure is
the peak above the level just before the operation. The bound the new format keeps: the rank's own
part plus one parameter's full fp32 master and moments (printed next to it).

    python bench/state_io.py [--rounds 3] [--scale x4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from _results import machine, update_section  # noqa: E402

SCALES = {
    "demo": {},
    "x4": {"d_model": 256, "num_heads": 8, "moe": {"expert_hidden": 512}},
}


class PeakRss:
    """Peak anonymous resident memory above the level at entry, sampled every 2 ms."""

    def __enter__(self) -> PeakRss:
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _rss(self) -> int:
        """Anonymous resident memory (RssAnon): what the process allocated. File pages that safetensors'
        mmap brings in are page cache, shared and reclaimable, and not counted."""
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no RssAnon in /proc/self/status")

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.002)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def extra(self) -> int:
        return self.peak - self.base


def _config(tmp: Path, overrides: dict) -> Path:
    import numpy as np
    import yaml

    from tessera.data.tokens import write_token_file
    from tessera.layout import RunLayout

    layout = RunLayout(tmp / "results" / "bench")
    layout.tokenizer_dir.mkdir(parents=True, exist_ok=True)
    (layout.tokenizer_dir / "tokenizer.json").write_text('{"bench": true}')
    rng = np.random.default_rng(0)
    meta = {"vocab_size": 8192, "tokenizer_sha256": "b", "eos_id": 1, "language": "ita", "split": "train"}
    with write_token_file(layout.tokens("ita", "train"), meta) as writer:
        writer.add_documents([rng.integers(2, 8192, size=300).tolist() for _ in range(200)])
    config = tmp / "bench.yaml"
    config.write_text(yaml.safe_dump({
        "run": {"name": "bench", "results_dir": str(tmp / "results")},
        "model": {"preset": "demo", "overrides": overrides},
        "train": {"micro_batch_size": 2, "zero_stage": 2, "expert_parallel_size": 2, "num_threads": 1,
                  "log_every": 10**6, "stages": [{"name": "bench", "steps": 1000, "seq_len": 64,
                                                   "batch_size": 4, "mixture": {"ita": 1.0}}]},
        "energy": {"codecarbon": False},
    }))
    return config


def _old_save(engine, path: Path) -> None:
    torch.save({"model": engine.module.state_dict(), "optimizer": engine.optimizer.state_dict(),
                "rng": torch.get_rng_state()}, path)


def _old_load(engine, path: Path) -> None:
    payload = torch.load(path, map_location="cpu", weights_only=False)
    engine.module.load_state_dict(payload["model"])
    partitions = [None] * torch.distributed.get_world_size()
    partitions[torch.distributed.get_rank(group=engine.optimizer.dp_process_group)] = payload["optimizer"]
    engine.optimizer.load_state_dict(partitions, load_optimizer_states=True, load_from_fp32_weights=True)


def _rank(rank: int, world: int, port: int, config: str, rounds: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from tessera.config import load
    from tessera.parallel.dist import barrier
    from tessera.parallel.full_state import param_slots
    from tessera.train.checkpoint import load_state, save_state, verify_state
    from tessera.train.trainer import Segment

    cfg = load([REPO / "config.yaml", Path(config)], [])
    segment = Segment(cfg, cfg.train.stage("bench"), 1000, None)
    segment.restore()
    segment.callbacks = []
    segment.step(0)
    state_dir = Path(config).parent / "state-bench"
    old_dir = Path(config).parent / "old"
    old_dir.mkdir(exist_ok=True)
    records = []
    for _ in range(rounds):
        row = {}
        for kind in ("new", "old"):
            barrier()
            with PeakRss() as save_mem:
                t0 = time.perf_counter()
                if kind == "new":
                    directory = save_state(state_dir, segment.meta, segment.engine)
                else:
                    _old_save(segment.engine, old_dir / f"rank-{rank}.pt")
                    barrier()
                save_s = time.perf_counter() - t0
            barrier()
            with PeakRss() as load_mem:
                t0 = time.perf_counter()
                if kind == "new":
                    if verify_state(directory, segment.meta):
                        raise SystemExit(f"{directory}: the state just saved fails its own sha256 check")
                    from tessera.train.checkpoint import read_meta

                    load_state(directory, read_meta(directory), segment.engine)
                else:
                    _old_load(segment.engine, old_dir / f"rank-{rank}.pt")
                barrier()
                load_s = time.perf_counter() - t0
            files = directory.glob("*.safetensors") if kind == "new" else old_dir.glob("*.pt")
            total = sum(f.stat().st_size for f in files)
            row[kind] = {"save_s": save_s, "load_s": load_s, "bytes": total,
                         "save_extra": save_mem.extra, "load_extra": load_mem.extra}
        records.append(row)
    new_part = (directory / f"rank-{rank:05d}.safetensors").stat().st_size
    largest = max(s.param.numel() for s in param_slots(segment.engine.module)) * 4 * 3
    Path(out, f"rank{rank}.json").write_text(json.dumps({"rounds": records, "part": new_part,
                                                         "largest_param_state": largest}))
    segment.release()


def _table(results: list[dict]) -> str:
    lines = ["| format | state size | save s/GB | load s/GB | peak extra RSS save (per rank) | "
             "peak extra RSS load (per rank) |", "|---|---|---|---|---|---|"]
    for kind, label in (("new", "layout-independent (safetensors, per-unit fp32 + moments, sha256)"),
                        ("old", "per-rank pickles (module + ZeRO partition)")):
        rounds = [r[kind] for r in results[0]["rounds"]]
        gb = rounds[0]["bytes"] / 1e9
        save = statistics.median(r["save_s"] for r in rounds) / gb
        load = statistics.median(r["load_s"] for r in rounds) / gb
        def mem(key: str, kind: str = kind) -> str:
            peaks = [max(r[kind][key] for r in rank["rounds"]) / 2**20 for rank in results]
            return " / ".join(f"{p:.0f} MiB" for p in peaks)

        lines.append(f"| {label} | {rounds[0]['bytes'] / 2**20:.0f} MiB | {save:.1f} | {load:.1f} | "
                     f"{mem('save_extra')} | {mem('load_extra')} |")
    bound = " / ".join(f"{(r['part'] + r['largest_param_state']) / 2**20:.0f} MiB" for r in results)
    lines.append("")
    lines.append(f"Bound of the new format per rank (its part + one parameter's fp32 master and moments): "
                 f"{bound}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", choices=sorted(SCALES), default="x4")
    args = parser.parse_args()
    from tessera.parallel.dist import free_port

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config = _config(tmp, SCALES[args.scale])
        mp.spawn(_rank, args=(2, free_port(), str(config), args.rounds, str(tmp)), nprocs=2, join=True)
        results = [json.loads((tmp / f"rank{r}.json").read_text()) for r in range(2)]
    table = _table(results)
    print(table)
    update_section("state_io", (
        f"## Run-state save/load (bench/state_io.py --rounds {args.rounds} --scale {args.scale})\n\n"
        f"Model: demo preset{' x4 (d 256, expert hidden 512)' if args.scale == 'x4' else ''}; 2 gloo ranks, "
        "expert parallel 2, ZeRO-2, fp32; median of the rounds; memory = peak anonymous resident memory "
        "(RssAnon, not the page cache of mmapped files) above the level before the operation, sampled "
        "every 2 ms, worst round, rank 0 / rank 1. Load includes the new format's sha256 check.\n"
        f"Machine: {machine()}.\n\n{table}\n"))


if __name__ == "__main__":
    main()
