# Data stage, scattered over shards (tessera.data.scatter; docs/data.md): every source is cut into
# `num_shards` slices, each filtered by its own prepare_shard job; dedup_pairs finds duplicate pairs per
# language and group of LSH bands over all shards, dedup_removals clusters them into a removal list,
# write_shard writes each shard's split files, and prepare_data merges the counts into the manifest.
# Hub sources and downloads are fetched first on the login node (compute nodes are offline).
import re

from tessera.data.sources import FETCHED, cache_root, workflow_inputs

HF_SOURCES = [s.name for s in CFG.data.sources if s.kind == "hf"]
DOWNLOADS = [s.name for s in CFG.data.sources if s.download is not None]
SOURCE_CACHE = str(cache_root(CFG))


localrules:
    fetch_source,
    download_source,


wildcard_constraints:
    part=r"\d{5}",
    group=r"\d{3}",


rule fetch_source:
    output:
        directory(f"{SOURCE_CACHE}/{{source}}"),
    log:
        log_file(job("fetch_source", "source")),
    params:
        tessera=TESSERA,
    wildcard_constraints:
        # Only hub sources are fetched; "(?!)" matches nothing when there are none.
        source="|".join(re.escape(name) for name in HF_SOURCES) or "(?!)",
    conda:
        "../envs/data.yaml"
    shell:
        "{params.tessera} data fetch --source {wildcards.source:q} > {log:q} 2>&1"


# A file source with `download:` (e.g. FineWeb-2 parquet): downloaded into the site's work area, resumed
# where an interrupted fetch stopped (so the output is the record written last, not the folder, which
# Snakemake would delete before a rerun), every file checked against its size and sha256.
rule download_source:
    output:
        fetched=f"{SOURCE_CACHE}/{{source}}/{FETCHED}",
    log:
        log_file(job("download_source", "source")),
    params:
        tessera=TESSERA,
    wildcard_constraints:
        source="|".join(re.escape(name) for name in DOWNLOADS) or "(?!)",
    conda:
        "../envs/data.yaml"
    shell:
        "{params.tessera} data fetch --source {wildcards.source:q} > {log:q} 2>&1"


rule prepare_shard:
    input:
        sources=shard_sources,
    output:
        work=directory(str(LAYOUT.shard_work("{lang}", "{part}"))),
        energy=energy_log(job("prepare_shard", "lang", "part")),
    log:
        log_file(job("prepare_shard", "lang", "part")),
    benchmark:
        benchmark_file(job("prepare_shard", "lang", "part"))
    params:
        tessera=TESSERA,
    # One core per shard: the workflow scales by shards (data.sources[].num_shards), not by threads.
    threads: 1
    resources:
        runtime=120,
        mem_mb=4000,
    conda:
        "../envs/data.yaml"
    shell:
        "{params.tessera} --energy-out {output.energy:q} data shard --language {wildcards.lang:q}"
        " --part {wildcards.part:q} > {log:q} 2>&1"


rule dedup_pairs:
    input:
        work=language_shard_work,
    output:
        pairs=str(LAYOUT.dedup_pairs("{lang}", "{group}")),
        energy=energy_log(job("dedup_pairs", "lang", "group")),
    log:
        log_file(job("dedup_pairs", "lang", "group")),
    benchmark:
        benchmark_file(job("dedup_pairs", "lang", "group"))
    params:
        tessera=TESSERA,
    threads: 1
    resources:
        runtime=120,
        mem_mb=8000,
    conda:
        "../envs/data.yaml"
    shell:
        "{params.tessera} --energy-out {output.energy:q} data pairs --language {wildcards.lang:q}"
        " --group {wildcards.group:q} > {log:q} 2>&1"


rule dedup_removals:
    input:
        pairs=expand(str(LAYOUT.dedup_pairs("{{lang}}", "{group}")), group=DEDUP_GROUPS),
        work=language_shard_work,
    output:
        removed=str(LAYOUT.dedup_removed("{lang}")),
        energy=energy_log(job("dedup_removals", "lang")),
    log:
        log_file(job("dedup_removals", "lang")),
    benchmark:
        benchmark_file(job("dedup_removals", "lang"))
    params:
        tessera=TESSERA,
    threads: 1
    resources:
        runtime=60,
        mem_mb=8000,
    conda:
        "../envs/data.yaml"
    shell:
        "{params.tessera} --energy-out {output.energy:q} data removals --language {wildcards.lang:q}"
        " > {log:q} 2>&1"


rule write_shard:
    input:
        work=str(LAYOUT.shard_work("{lang}", "{part}")),
        removed=rules.dedup_removals.output.removed,
    output:
        shards=[str(LAYOUT.shard("{lang}", split, "{part}")) for split in SPLITS],
        counts=str(LAYOUT.shard_counts("{lang}", "{part}")),
        energy=energy_log(job("write_shard", "lang", "part")),
    log:
        log_file(job("write_shard", "lang", "part")),
    benchmark:
        benchmark_file(job("write_shard", "lang", "part"))
    params:
        tessera=TESSERA,
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
    conda:
        "../envs/data.yaml"
    shell:
        "{params.tessera} --energy-out {output.energy:q} data write --language {wildcards.lang:q}"
        " --part {wildcards.part:q} > {log:q} 2>&1"


rule prepare_data:
    input:
        # The source files are hashed into the manifest; the counts come from every shard.
        sources=workflow_inputs(CFG),
        counts=all_shards(LAYOUT.shard_counts),
        work=all_shards(LAYOUT.shard_work),
    output:
        manifest=str(LAYOUT.manifest),
        energy=energy_log("prepare_data"),
    log:
        log_file("prepare_data"),
    benchmark:
        benchmark_file("prepare_data")
    params:
        tessera=TESSERA,
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
    conda:
        "../envs/data.yaml"
    shell:
        "{params.tessera} --energy-out {output.energy:q} data manifest > {log:q} 2>&1"
