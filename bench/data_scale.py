"""The scattered data stage at scale: throughput per core, scaling 1 -> 2 jobs, memory per job, dedup recall.

    python bench/data_scale.py --size-mb 1024          # the full benchmark (about 20 min on 2 idle cores)
    python bench/data_scale.py --size-mb 60            # a quick check of the same code

Generates `--size-mb` of multilingual text in FineWeb-2's parquet schema (bench/_synthetic_corpus.py: a
word Markov model per language from ../shared/data/corpus, 1% planted near-duplicates), then runs the
data rules (prepare_shard, dedup_pairs, dedup_removals, write_shard, prepare_data) through Snakemake,
exactly as a cluster run does (one `tessera` process per job, energy meter included), with 1 and 2
parallel jobs, and at 1/4 and 1/2 of the input for peak memory per job (Snakemake's benchmark files,
max RSS). Prints MB/s per core, scaling efficiency, memory per job and size, recall of the planted
near-duplicates and false removals, seconds per rule, and a projection for 1 and 10 TB on Leonardo DCGP
nodes; the last line sums them up. Records the tables in bench/RESULTS.md (section data_scale).

Shards: `--shards` per language at full size (default 4, so that 2 parallel jobs get equal work); the
1/4 and 1/2 runs keep the same shard size, so they have fewer shards, not smaller ones. Each job pays a
fixed start-up (Python, imports, CodeCarbon's hardware probe: about 2 s, printed as "smallest job"), which
is why shards of tens of MB, not a few MB, are measured; production shards are hundreds of MB
(configs/corpus.yaml).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402
from _results import machine, update_section  # noqa: E402
from _synthetic_corpus import LANGUAGES, Corpus, generate  # noqa: E402

from tessera.data.shards import read_shard  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "data" / "corpus"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
DATA_RULES = ("prepare_shard", "dedup_pairs", "dedup_removals", "write_shard", "prepare_data")
DCGP_CORES = 112
PRODUCTION_SHARD_MB = 600
"""Text per prepare shard in configs/corpus.yaml (FineWeb-2 files of 2-3 GB in 4 shards each)."""
"""Cores of a Leonardo DCGP node (2x Xeon 8480+)."""


def _config(workdir: Path, corpus: Corpus, fraction: float, shard_mb: float) -> Path:
    raw = copy.deepcopy(yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8")))
    raw["run"] = {"name": "bench", "seed": 1, "results_dir": str(workdir / "results")}
    sources = []
    for lang in LANGUAGES:
        mb = corpus.text_bytes[lang] * fraction / 1e6
        rows = sum(_rows(f) for f in corpus.files[lang])
        sources.append({
            "name": f"fineweb2_{lang}", "kind": "parquet", "id_field": "id", "language": lang,
            "path": str(corpus.files[lang][0].parent / "*.parquet"), "license": "ODC-By-1.0",
            "origin": "bench/_synthetic_corpus.py", "tdm_opt_out": "synthetic",
            "num_shards": max(1, math.ceil(mb / shard_mb)),
            "max_documents": max(1, int(rows * fraction)) if fraction < 1 else None,
        })
    raw["data"] = {"sources": sources, "allowed_licenses": ["ODC-By-1.0"], "num_dedup_jobs": 2,
                   "splits": {"validation": 0.01, "test": 0.01}}
    path = workdir / "config.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _run(workdir: Path, jobs: int) -> float:
    """Wall seconds of the data rules through Snakemake with `jobs` parallel jobs."""
    cmd = [str(SNAKEMAKE), "prepare_data", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores",
           str(jobs), "--quiet", "all", "--configfile", str(workdir / "config.yaml")]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True)  # noqa: S603 snakemake of this repository, fixed arguments
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed:\n{result.stderr[-4000:]}")
    return time.perf_counter() - start


def _peak_rss(workdir: Path) -> dict[str, float]:
    """Largest max RSS (MB) of any job of each data rule (Snakemake benchmark files)."""
    peaks: dict[str, float] = {}
    for tsv in (workdir / "results" / "bench" / "benchmarks").glob("*.tsv"):
        rule = tsv.stem.split("-")[0]
        with open(tsv) as f:
            rss = float(next(csv.DictReader(f, delimiter="\t"))["max_rss"])
        peaks[rule] = max(peaks.get(rule, 0.0), rss)
    return peaks


def _rule_seconds(workdir: Path) -> dict[str, list[float]]:
    """Wall seconds of every job of each data rule (Snakemake benchmark files)."""
    seconds: dict[str, list[float]] = {rule: [] for rule in DATA_RULES}
    for tsv in (workdir / "results" / "bench" / "benchmarks").glob("*.tsv"):
        with open(tsv) as f:
            seconds[tsv.stem.split("-")[0]].append(float(next(csv.DictReader(f, delimiter="\t"))["s"]))
    return seconds


def _recall(workdir: Path, corpus: Corpus) -> tuple[int, int, int]:
    """(planted duplicates removed, planted, dedup removals that were not planted duplicates)."""
    data = workdir / "results" / "bench" / "data"
    kept = {doc["id"].split("/", 1)[1] for path in data.rglob("*.jsonl.zst") for doc in read_shard(path)}
    found = sum(1 for original, duplicate in corpus.planted if duplicate not in kept and original in kept)
    manifest = json.loads((data / "manifest.json").read_text())
    removed = sum(s["dropped"]["exact_duplicate"] + s["dropped"]["near_duplicate"]
                  for s in manifest["sources"].values())
    return found, len(corpus.planted), removed - found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=float, default=1024.0, help="text to generate (MB)")
    parser.add_argument("--shards", type=int, default=4, help="shards per language at full size")
    parser.add_argument("--file-mb", type=float, default=64.0, help="text per parquet file (MB)")
    parser.add_argument("--workdir", type=Path, help="keep the corpus and runs here (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        root = args.workdir or Path(tmp)
        start = time.perf_counter()
        corpus = generate(CORPUS, root / f"corpus-{args.size_mb:g}", args.size_mb, args.file_mb)
        generated_s = time.perf_counter() - start
        total_mb = sum(corpus.text_bytes.values()) / 1e6
        shard_mb = max(corpus.text_bytes.values()) / 1e6 / args.shards * 1.001
        walls, peaks = {}, {}
        for jobs in (1, 2):
            workdir = root / f"full-{jobs}"
            _config(workdir, corpus, 1.0, shard_mb)
            walls[jobs] = _run(workdir, jobs)
            peaks[1.0] = _peak_rss(workdir)
        found, planted, false_removals = _recall(root / "full-1", corpus)
        for fraction in (0.25, 0.5):
            workdir = root / f"part-{fraction}"
            _config(workdir, corpus, fraction, shard_mb)
            _run(workdir, 2)
            peaks[fraction] = _peak_rss(workdir)
        rules = _rule_seconds(root / "full-1")
        report(args, total_mb, generated_s, walls, peaks, (found, planted, false_removals), rules)


def _projection(total_mb: float, walls: dict[int, float], rules: dict[str, list[float]], startup: float,
                languages: int, dedup_jobs: int) -> list[str]:
    """Hours for 1 and 10 TB on N DCGP nodes, from this run's seconds per MB of each rule.

    Each job's time is the start-up every job pays (the smallest job) plus work that grows with its input.
    The shard rules (prepare_shard, write_shard) spread over every core at the measured 1 -> 2
    efficiency, in shards of PRODUCTION_SHARD_MB; dedup_pairs over languages x dedup jobs;
    dedup_removals over languages only (one job per language reads all its pairs: the stage's serial
    part), the languages equal in size as here. The manifest merges per-shard counts and reuses the
    sha256 `tessera data fetch` recorded: its time is kept as measured, not scaled.
    """
    efficiency = min(1.0, walls[1] / walls[2] / 2)
    work = {rule: max(0.0, sum(seconds) - startup * len(seconds)) / total_mb
            for rule, seconds in rules.items()}
    lines = []
    for nodes in (1, 4, 16):
        cores = DCGP_CORES * nodes
        hours = []
        for mb in (1e6, 1e7):
            shard_jobs = 2 * mb / PRODUCTION_SHARD_MB
            shard_s = (mb * (work["prepare_shard"] + work["write_shard"]) + startup * shard_jobs) / (
                cores * efficiency)
            pairs_s = startup + mb * work["dedup_pairs"] / min(cores, languages * dedup_jobs)
            removals_s = startup + mb * work["dedup_removals"] / min(cores, languages)
            hours.append((shard_s + pairs_s + removals_s + sum(rules["prepare_data"])) / 3600)
        lines.append(f"{nodes} node(s): 1 TB {hours[0]:.1f} h, 10 TB {hours[1]:.1f} h")
    return lines


def report(args, total_mb: float, generated_s: float, walls: dict[int, float], peaks: dict,
           recall: tuple, rules: dict[str, list[float]]) -> None:
    found, planted, false_removals = recall
    per_core = total_mb / walls[1]
    efficiency = walls[1] / walls[2] / 2
    startup = min(min(seconds) for seconds in rules.values() if seconds)
    lines = [
        "## Scattered data stage (bench/data_scale.py)",
        "",
        machine(),
        "",
        f"`python bench/data_scale.py --size-mb {args.size_mb:g} --shards {args.shards}`: "
        f"{total_mb:.0f} MB of generated text in FineWeb-2's schema, 5 languages, {args.shards} shards each "
        f"({generated_s:.0f} s to generate), language id, PII and MinHash on; the data rules through "
        "Snakemake (one process per job, energy meter on, the product's default threads).",
        "",
        "| parallel jobs | wall s | MB/s | MB/s per core |",
        "|---|---|---|---|",
    ]
    for jobs, wall in walls.items():
        lines.append(f"| {jobs} | {wall:.1f} | {total_mb / wall:.2f} | {total_mb / wall / jobs:.2f} |")
    lines += ["", f"Scaling efficiency 1 -> 2 jobs: {efficiency:.2f}.", "",
              "Seconds per rule in the 1-job run (each job's wall time, start-up included; smallest job "
              f"{startup:.1f} s, about the start-up every job pays):", "",
              "| rule | jobs | seconds | s per MB of input |", "|---|---|---|---|"]
    for rule, seconds in rules.items():
        lines.append(f"| {rule} | {len(seconds)} | {sum(seconds):.1f} | {sum(seconds) / total_mb:.3f} |")
    lines += ["", "Peak memory (max RSS, MB) of the largest job of each rule, by input size (same shard "
              "size):", "", "| input | " + " | ".join(DATA_RULES) + " |",
              "|---" * (len(DATA_RULES) + 1) + "|"]
    for fraction in sorted(peaks):
        cells = " | ".join(f"{peaks[fraction].get(rule, 0):.0f}" for rule in DATA_RULES)
        lines.append(f"| {total_mb * fraction:.0f} MB | {cells} |")
    recall = found / planted if planted else float("nan")
    lines += ["", f"Planted near-duplicates removed: {found} of {planted} (recall {recall:.3f}); "
              f"dedup removals that were not planted: {false_removals}.", ""]
    projection = _projection(total_mb, walls, rules, startup, len(LANGUAGES), 2)
    lines += ["Projection on Leonardo DCGP (112 cores per node; each job = the start-up plus this run's "
              f"seconds per MB; shard rules in {PRODUCTION_SHARD_MB} MB shards over every core at the "
              "measured 1 -> 2 efficiency, dedup_pairs over languages x 2 jobs, dedup_removals one job per "
              "language; 5 equal languages): " + "; ".join(projection) + ".", ""]
    summary = (f"data_scale: {per_core:.2f} MB/s per core, efficiency 1->2 {efficiency:.2f}, peak RSS per "
               "job " + "/".join(f"{max(peaks[f].values()):.0f}" for f in sorted(peaks)) + " MB at "
               + "/".join(f"{total_mb * f:.0f}" for f in sorted(peaks)) + f" MB, recall {recall:.3f}, "
               f"false removals {false_removals}, 1 TB on 16 DCGP nodes {projection[-1].split('1 TB ')[1]}")
    lines.append(summary)
    table = "\n".join(lines)
    print(table)
    update_section("data_scale", table)


if __name__ == "__main__":
    main()
