# Data stage: sources -> filtered, deduplicated, split shards per language + manifest.json.
# Hub sources are downloaded first by fetch_source on the login/head node (compute nodes are offline).
import re

from tessera.data.sources import cache_root, workflow_inputs

HF_SOURCES = [s.name for s in CFG.data.sources if s.kind == "hf"]
SOURCE_CACHE = str(cache_root(CFG))


localrules:
    fetch_source,


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


rule prepare_data:
    input:
        # Local source files (a change reruns prepare) and hub caches (made by fetch_source).
        sources=workflow_inputs(CFG),
    output:
        shards=[str(LAYOUT.shard(lang, split)) for lang in LANGUAGES for split in SPLITS],
        manifest=str(LAYOUT.manifest),
        energy=energy_log("prepare_data"),
    log:
        log_file("prepare_data"),
    benchmark:
        benchmark_file("prepare_data")
    params:
        tessera=TESSERA,
    # Per-document filters run in one process per thread, with identical output for any count. One on a
    # laptop (the demo's 4 MB gain nothing from a pool); cluster profiles raise it with set-threads.
    threads: 1
    resources:
        runtime=60,
        mem_mb=8000,
    conda:
        "../envs/data.yaml"
    shell:
        "{params.tessera} --energy-out {output.energy:q} data prepare --workers {threads} > {log:q} 2>&1"
