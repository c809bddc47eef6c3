# Tokenizer: fit BPE on a sample of every training shard, report fertility, encode every prepare shard
# (one tokenize job each), then index each language's token shards per split (what training reads).
# The BPE trainer and the encoder use every core they are given (Rust threads; `--threads` for tokenize).


rule train_tokenizer:
    input:
        shards=[str(LAYOUT.shard(lang, "train", part)) for lang, part in SHARDS],
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
        shards=[str(LAYOUT.shard(lang, "validation", part)) for lang, part in SHARDS],
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
        shards=[str(LAYOUT.shard("{lang}", split, "{part}")) for split in SPLITS],
    output:
        tokens=[
            str(LAYOUT.token_file("{lang}", split, "{part}", suffix))
            for split in SPLITS
            for suffix in TOKEN_SUFFIXES
        ],
        energy=energy_log(job("tokenize", "lang", "part")),
    log:
        log_file(job("tokenize", "lang", "part")),
    benchmark:
        benchmark_file(job("tokenize", "lang", "part"))
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
        " --part {wildcards.part:q} --threads {threads} > {log:q} 2>&1"


# Reads a few small JSON files: on the login node rather than in the queue.
localrules:
    index_tokens,


rule index_tokens:
    input:
        shards=language_token_shards,
    output:
        indexes=[str(LAYOUT.token_index("{lang}", split)) for split in SPLITS],
    log:
        log_file(job("index_tokens", "lang")),
    params:
        tessera=TESSERA,
    conda:
        "../envs/tokenizer.yaml"
    shell:
        "{params.tessera} tokenize --language {wildcards.lang:q} --index > {log:q} 2>&1"
