# Tokenizer: fit BPE on the training split, report fertility, encode every language/split.
# The BPE trainer and the encoder use every core they are given (Rust threads; `--threads` for tokenize).


rule train_tokenizer:
    input:
        shards=expand(f"{OUT}/data/{{lang}}/train.jsonl.zst", lang=LANGUAGES),
    output:
        tokenizer=str(LAYOUT.tokenizer_dir / "tokenizer.json"),
        tokenizer_config=str(LAYOUT.tokenizer_dir / "tokenizer_config.json"),
        special_tokens_map=str(LAYOUT.tokenizer_dir / "special_tokens_map.json"),
        record=str(LAYOUT.tokenizer_dir / "tessera_tokenizer.json"),
        energy=energy_log("train_tokenizer"),
    log:
        log_file("train_tokenizer"),
    benchmark:
        benchmark_file("train_tokenizer")
    threads: 2
    resources:
        runtime=60,
        mem_mb=16000,
    params:
        tessera=TESSERA,
    conda:
        "../envs/tokenizer.yaml"
    shell:
        "{params.tessera} --energy-out {output.energy} tokenizer train > {log} 2>&1"


rule tokenizer_report:
    input:
        tokenizer=rules.train_tokenizer.output.tokenizer,
        record=rules.train_tokenizer.output.record,
        shards=expand(f"{OUT}/data/{{lang}}/validation.jsonl.zst", lang=LANGUAGES),
    output:
        md=report(report_file("tokenizer.md"), category="Tokenizer"),
        csv=report_file("tokenizer.csv"),
        png=report(report_file("tokenizer.png"), category="Tokenizer"),
        energy=energy_log("tokenizer_report"),
    log:
        log_file("tokenizer_report"),
    benchmark:
        benchmark_file("tokenizer_report")
    resources:
        runtime=20,
        mem_mb=4000,
    params:
        tessera=TESSERA,
    conda:
        "../envs/tokenizer.yaml"
    shell:
        "{params.tessera} --energy-out {output.energy} tokenizer report > {log} 2>&1"


rule tokenize:
    input:
        tokenizer=rules.train_tokenizer.output.tokenizer,
        shard=f"{OUT}/data/{{lang}}/{{split}}.jsonl.zst",
    output:
        bin=f"{OUT}/tokens/{{lang}}/{{split}}.bin",
        idx=f"{OUT}/tokens/{{lang}}/{{split}}.idx",
        meta=f"{OUT}/tokens/{{lang}}/{{split}}.json",
        energy=energy_log("tokenize-{lang}-{split}"),
    log:
        log_file("tokenize-{lang}-{split}"),
    benchmark:
        benchmark_file("tokenize-{lang}-{split}")
    threads: 2
    resources:
        runtime=60,
        mem_mb=4000,
    params:
        tessera=TESSERA,
    conda:
        "../envs/tokenizer.yaml"
    shell:
        "{params.tessera} --energy-out {output.energy} tokenize --language {wildcards.lang}"
        " --split {wildcards.split} --threads {threads} > {log} 2>&1"
