"""The scattered data stage (tessera.data.scatter): the same documents, splits and counts for any number of
shards, dedup jobs or parallel jobs; a source that loses every document stops the stage, naming the filter."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tessera.data.prepare import prepare_data
from tessera.data.shards import read_shard
from tessera.errors import DataError
from tessera.layout import SPLITS, RunLayout

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def paragraphs(book: Path, count: int, min_chars: int = 600) -> list[str]:
    """The first `count` runs of paragraphs of at least `min_chars` characters from a book."""
    out, current = [], []
    for paragraph in book.read_text(encoding="utf-8").split("\n\n"):
        current.append(paragraph.strip())
        if sum(len(p) for p in current) >= min_chars:
            out.append("\n\n".join(current))
            current = []
            if len(out) == count:
                break
    return out


@pytest.fixture
def real_sources(shared_data: Path, tmp_path: Path, write_fineweb_parquet) -> list[dict]:
    """Italian and English paragraphs of the shared corpus as FineWeb-2 parquet, with copies planted."""
    sources = []
    for lang, code, folder in (("ita", "ita_Latn", "it"), ("eng", "eng_Latn", "en")):
        book = sorted((shared_data / "corpus" / folder).glob("*.txt"))[0]
        texts = paragraphs(book, 60)
        texts[40] = texts[3]  # an exact copy
        texts[50] = texts[7].replace(".", ";", 1)  # a near copy
        path = tmp_path / "fineweb2" / code / "train-00000.parquet"
        write_fineweb_parquet(path, texts, code)
        sources.append({"name": f"fineweb2_{lang}", "kind": "parquet", "path": str(path), "id_field": "id",
                        "language": lang, "license": "ODC-By-1.0", "origin": "test", "tdm_opt_out": "test"})
    return sources


def _config(make_config, sources: list[dict], num_shards: int, num_dedup_jobs: int):
    sources = [{**s, "num_shards": num_shards} for s in sources]
    return make_config(sources, num_dedup_jobs=num_dedup_jobs, splits={"validation": 0.1, "test": 0.1},
                       allowed_licenses=["ODC-By-1.0", "public-domain"])


def _documents(layout: RunLayout, lang: str) -> dict[str, list[dict]]:
    return {split: [doc for path in sorted((layout.data_dir / lang / split).glob("*.jsonl.zst"))
                    for doc in read_shard(path)] for split in SPLITS}


def _manifest(layout: RunLayout) -> dict:
    manifest = json.loads(layout.manifest.read_text())
    manifest.pop("created_utc")
    return manifest


def test_any_number_of_shards_keeps_the_same_documents(make_config, real_sources):
    results = []
    for num_shards, num_dedup_jobs, workers in ((1, 1, 1), (2, 3, 1), (4, 2, 2)):
        cfg = _config(make_config, real_sources, num_shards, num_dedup_jobs)
        prepare_data(cfg, workers=workers)
        layout = RunLayout(cfg.out_dir)
        assert len(list((layout.data_dir / "ita" / "train").iterdir())) == num_shards
        results.append(({lang: _documents(layout, lang) for lang in ("ita", "eng")}, _manifest(layout)))
    assert all(result == results[0] for result in results[1:])
    documents, manifest = results[0]
    for name in ("fineweb2_ita", "fineweb2_eng"):
        source = manifest["sources"][name]
        assert source["dropped"]["exact_duplicate"] == 1 and source["dropped"]["near_duplicate"] == 1, source
        assert source["documents_in"] == 60
    kept = {doc["id"] for split in documents["ita"].values() for doc in split}
    assert "fineweb2_ita/<urn:uuid:ita_Latn-00000003>" in kept  # the first copy survives
    assert "fineweb2_ita/<urn:uuid:ita_Latn-00000040>" not in kept


def test_a_source_that_loses_every_document_stops_the_stage(make_config, real_sources, tmp_path):
    good = _config(make_config, real_sources, 2, 1)
    prepare_data(good)
    layout = RunLayout(good.out_dir)
    before = layout.manifest.read_bytes()
    mislabelled = [real_sources[0], {**real_sources[1], "language": "deu"}]  # English declared German
    with pytest.raises(DataError, match=r"source fineweb2_eng: all 60 documents were dropped, most by the "
                                        r"language filter .*previous data/ is untouched"):
        prepare_data(_config(make_config, mislabelled, 2, 1))
    assert layout.manifest.read_bytes() == before
    assert sorted(p.name for p in layout.root.iterdir()) == ["data"]


def _snakemake(workdir: Path, *flags: str) -> subprocess.CompletedProcess:
    cmd = [str(SNAKEMAKE), "prepare_data", *flags, "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", str(workdir / "config.yaml")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # three Snakemake runs of 12 jobs each: ~2 min on a 2-core VM
def test_one_two_and_four_jobs_write_the_same_bytes(real_sources, demo_raw, tmp_path):
    outputs = []
    for jobs in (1, 2, 4):
        workdir = tmp_path / f"jobs{jobs}"
        workdir.mkdir()
        raw = copy.deepcopy(demo_raw)
        raw["run"] = {"name": "scatter", "results_dir": str(workdir / "results")}
        raw["data"] = {"sources": [{**s, "num_shards": 4} for s in real_sources], "num_dedup_jobs": 2,
                       "allowed_licenses": ["ODC-By-1.0"]}
        for stage in raw["train"]["stages"]:
            stage["mixture"] = {"ita": 1.0}
        (workdir / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        result = _snakemake(workdir, "--cores", str(jobs))
        assert result.returncode == 0, result.stderr[-3000:]
        layout = RunLayout(workdir / "results" / "scatter")
        files = {str(p.relative_to(layout.data_dir)): p.read_bytes()
                 for p in sorted(layout.data_dir.rglob("*.jsonl.zst"))}
        outputs.append((files, _manifest(layout)))
    assert len(outputs[0][0]) == 2 * 4 * len(SPLITS)
    assert all(output == outputs[0] for output in outputs[1:])

    # An interrupted scatter: three of eng's four shards were filtered, nothing after them ran. The rerun
    # filters only the missing shard, and keeps the others' files.
    layout = RunLayout(tmp_path / "jobs4" / "results" / "scatter")
    kept = (layout.shard_work("eng", 0) / "keys.npy").stat().st_mtime_ns
    shutil.rmtree(layout.shard_work("eng", 2))
    for path in [layout.manifest, *layout.data_work_dir.glob("eng/*.*"), *layout.data_dir.glob("eng/*/*")]:
        path.unlink()
    rerun = _snakemake(tmp_path / "jobs4", "--cores", "2")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.stderr.count("rule prepare_shard:") == 1, rerun.stderr
    assert "wildcards: lang=eng, part=00002" in rerun.stderr
    assert (layout.shard_work("eng", 0) / "keys.npy").stat().st_mtime_ns == kept
    assert _manifest(layout) == outputs[-1][1]


def test_stage_jobs_name_a_wrong_language_or_group(make_config, bible_source):
    from tessera.data.scatter import find_pairs, find_removals

    cfg = make_config([bible_source("bible_ita", "d", "ita", 3)], num_dedup_jobs=2)
    layout = RunLayout(cfg.out_dir)
    with pytest.raises(DataError, match="language 'fra' has no data source"):
        find_removals(cfg, "fra", layout)
    with pytest.raises(DataError, match=r"dedup group 2 is outside 0\.\.1"):
        find_pairs(cfg, "ita", 2, layout)


@pytest.mark.slow  # two Snakemake runs: ~1 min on a 2-core VM
def test_the_workflow_stops_before_writing_when_a_source_loses_everything(real_sources, demo_raw, tmp_path):
    raw = copy.deepcopy(demo_raw)
    raw["run"] = {"name": "scatter", "results_dir": str(tmp_path / "results")}
    raw["data"] = {"sources": [{**s, "num_shards": 2} for s in real_sources],
                   "allowed_licenses": ["ODC-By-1.0"]}
    for stage in raw["train"]["stages"]:
        stage["mixture"] = {"ita": 1.0}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    assert _snakemake(tmp_path, "--cores", "2").returncode == 0
    layout = RunLayout(tmp_path / "results" / "scatter")
    before = {p: p.read_bytes() for p in sorted(layout.data_dir.rglob("*")) if p.is_file()}
    raw["data"]["sources"][1]["language"] = "deu"  # English declared German: language id drops it all
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    failed = _snakemake(tmp_path, "--cores", "2")
    assert failed.returncode != 0
    log = (layout.root / "logs" / "dedup_removals-deu.log").read_text()
    assert "source fineweb2_eng: all 60 documents were dropped, most by the language filter" in log
    assert "rule write_shard" not in failed.stderr.split("Error in rule dedup_removals")[1]
    assert {p: p.read_bytes() for p in sorted(layout.data_dir.rglob("*")) if p.is_file()} == before
