# Data stage: sources -> filtered, deduplicated, split shards per language + manifest.json.


rule prepare_data:
    output:
        shards=expand(f"{OUT}/data/{{lang}}/{{split}}.jsonl.zst", lang=LANGUAGES, split=SPLITS),
        manifest=f"{OUT}/data/manifest.json",
        energy=energy_log("prepare_data"),
    log:
        log_file("prepare_data"),
    benchmark:
        benchmark_file("prepare_data")
    threads: 2
    resources:
        runtime=60,
        mem_mb=8000,
    conda:
        "../envs/tessera.yaml"
    shell:
        "{TESSERA} --energy-out {output.energy} data prepare > {log} 2>&1"
