# Tokenizer: fit BPE on the training split, report fertility, encode every language/split.
# The BPE trainer and the encoder use every core they are given (Rust threads; `--threads` for tokenize).


rule train_tokenizer:
    input:
        shards=[str(LAYOUT.shard(lang, "train")) for lang in LANGUAGES],
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
        "{params.tessera} --energy-out {output.energy:q} tokenizer train > {log:q} 2>&1"


rule tokenizer_report:
    input:
        tokenizer=rules.train_tokenizer.output.tokenizer,
        record=rules.train_tokenizer.output.record,
        shards=[str(LAYOUT.shard(lang, "validation")) for lang in LANGUAGES],
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
        "{params.tessera} --energy-out {output.energy:q} tokenizer report > {log:q} 2>&1"


rule tokenize:
    input:
        tokenizer=rules.train_tokenizer.output.tokenizer,
        shard=str(LAYOUT.shard("{lang}", "{split}")),
    output:
        bin=str(LAYOUT.token_file("{lang}", "{split}", ".bin")),
        idx=str(LAYOUT.token_file("{lang}", "{split}", ".idx")),
        meta=str(LAYOUT.token_file("{lang}", "{split}", ".json")),
        energy=energy_log(job("tokenize", "lang", "split")),
    log:
        log_file(job("tokenize", "lang", "split")),
    benchmark:
        benchmark_file(job("tokenize", "lang", "split"))
    threads: 2
    resources:
        runtime=60,
        mem_mb=4000,
    params:
        tessera=TESSERA,
    conda:
        "../envs/tokenizer.yaml"
    shell:
        "{params.tessera} --energy-out {output.energy:q} tokenize --language {wildcards.lang:q}"
        " --split {wildcards.split:q} --threads {threads} > {log:q} 2>&1"
