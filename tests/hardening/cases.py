"""The catalogue's cases by category (tests/hardening/test_catalogue.py runs them): how to make each bad
input, the command that must refuse it and what its message must name."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from tests.hardening.conftest import STAGES, Case

CFG = ("--config", "{config}")
INFO = (*CFG, "model", "info")
LAST_STAGE, LAST_STEP = STAGES[-1]
LAST_CHECKPOINT = f"train/{LAST_STAGE}/step-{LAST_STEP:06d}"
FIRST_CHECKPOINT = f"train/{STAGES[0][0]}/step-{STAGES[0][1]:06d}"


def setting(dotted: str, value) -> Callable[[dict], None]:
    """An edit setting `dotted` (list items by index: train.stages.0.name) to `value`."""

    def edit(raw: dict) -> None:
        *parents, last = dotted.split(".")
        node = raw
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


def removing(dotted: str) -> Callable[[dict], None]:
    def edit(raw: dict) -> None:
        *parents, last = dotted.split(".")
        node = raw
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return edit


def both(*edits: Callable[[dict], None]) -> Callable[[dict], None]:
    def edit(raw: dict) -> None:
        for one in edits:
            one(raw)

    return edit


def writing(relative: str, content: bytes | str) -> Callable[[Path], None]:
    """A prepare step writing `content` to a file of the run folder (replacing what was there)."""

    def prepare(out: Path) -> None:
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)

    return prepare


def truncating(relative: str) -> Callable[[Path], None]:
    def prepare(out: Path) -> None:
        path = out / relative
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return prepare


def deleting(relative: str) -> Callable[[Path], None]:
    def prepare(out: Path) -> None:
        path = out / relative
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()

    return prepare


NAME_RULE = r"not a usable name.*letters, digits"

# ---- config: the loader every verb runs first ------------------------------------------------------------

CONFIG = [
    Case("run-name-dotdot", INFO, (r"run\.name: '\.\.'", NAME_RULE), edit=setting("run.name", "..")),
    Case("run-name-slash", INFO, (r"run\.name: 'a/b'", NAME_RULE), edit=setting("run.name", "a/b")),
    Case("run-name-hidden", INFO, (r"run\.name: '\.x'", NAME_RULE), edit=setting("run.name", ".x")),
    Case("run-name-empty", INFO, (r"run\.name: ''", NAME_RULE), edit=setting("run.name", "")),
    Case("run-name-too-long", INFO, (r"run\.name: 'xxx", r"1-64"), edit=setting("run.name", "x" * 65)),
    Case("run-name-shell", INFO, (r"run\.name: 'r\$\(touch x\)'", NAME_RULE),
         edit=setting("run.name", "r$(touch x)")),
    Case("run-name-not-string", INFO, (r"run\.name: expected a string, got 7",), edit=setting("run.name", 7)),
    Case("stage-name-dotdot", INFO, (r"train\.stages\[0\]\.name: '\.\.'", NAME_RULE),
         edit=setting("train.stages.0.name", "..")),
    Case("stage-name-slash", INFO, (r"train\.stages\[1\]\.name: 'a/b'", NAME_RULE),
         edit=setting("train.stages.1.name", "a/b")),
    Case("source-name-traversal", INFO, (r"data\.sources\[0\]\.name: '\.\./x'", NAME_RULE),
         edit=setting("data.sources.0.name", "../x")),
    Case("source-language-traversal", INFO, (r"data\.sources\[0\]\.language: '\.\./\.\./x'", NAME_RULE),
         edit=setting("data.sources.0.language", "../../x")),
    Case("unknown-section", INFO, (r"unknown top-level key\(s\) trian", r"allowed: run, site"),
         edit=setting("trian", {})),
    Case("unknown-train-key", INFO, (r"train: unknown key\(s\) learning_rate", r"allowed keys: stages"),
         edit=setting("train.learning_rate", 0.1)),
    Case("missing-run", INFO, (r"required key 'run' is missing",), edit=removing("run")),
    Case("batch-not-multiple", INFO,
         (r"train\.stages\[s1\]\.batch_size: 5 is not a multiple", r"micro_batch"),
         edit=setting("train.stages.0.batch_size", 5)),
    Case("pue-below-one", INFO, (r"site\.pue: 0\.5 is below 1\.0",), edit=setting("site.pue", 0.5)),
    Case("country-code", INFO, (r"site\.country: 'it' must be an ISO 3166-1 alpha-3 code like ITA",),
         edit=setting("site.country", "it")),
    Case("steps-and-tokens", INFO, (r"train\.stages\[0\]: give exactly one of steps or tokens",),
         edit=setting("train.stages.0.tokens", 1000)),
    Case("lr-final-above-peak", INFO, (r"train\.stages\[0\]\.lr\.final: 1\.0 must lie in \[0, peak",),
         edit=setting("train.stages.0.lr", {"peak": 0.01, "final": 1.0})),
    Case("mixture-without-source", INFO, (r"mixture: language\(s\) por have no data source",
                                          r"languages with sources"),
         edit=setting("train.stages.0.mixture", {"por": 1.0})),
    Case("zero-stage-3", INFO, (r"train\.zero_stage: 3 is not allowed; allowed values: 0, 1, 2",),
         edit=setting("train.zero_stage", 3)),
    Case("precision-fp16", INFO, (r"train\.precision: 'fp16' is not allowed; allowed values: auto",),
         edit=setting("train.precision", "fp16")),
    Case("unknown-preset", INFO, (r"model\.preset: 'huge' is not a preset; presets: debug",),
         edit=setting("model.preset", "huge")),
    Case("override-vocab", INFO, (r"model\.overrides\.vocab_size", r"set tokenizer\.vocab_size instead"),
         edit=setting("model.overrides", {"vocab_size": 100})),
    Case("eval-device", INFO, (r"eval\.device: 'tpu' is not allowed; allowed values: auto, cpu, cuda",),
         edit=setting("eval.device", "tpu")),
    Case("splits-leave-nothing", INFO, (r"data\.splits: validation \+ test = 1\.1 leaves no training data",),
         edit=setting("data.splits", {"validation": 0.6, "test": 0.5})),
    Case("duplicate-stages", INFO, (r"train\.stages: stage names must be unique",),
         edit=setting("train.stages.1.name", "s1")),
    Case("seed-negative", INFO, (r"run\.seed: -1 must be in \[0, 2\*\*32\)",), edit=setting("run.seed", -1)),
    Case("betas-above-one", INFO, (r"train\.betas: \[0\.9, 1\.5\]: AdamW's betas lie in \[0, 1\)",),
         edit=setting("train.betas", [0.9, 1.5])),
    Case("results-dir-empty", INFO, (r"run\.results_dir: an empty path",),
         edit=setting("run.results_dir", "")),
    Case("unknown-local-task", INFO, (r"eval\.tasks: tessera_xcopa is not one of tessera's tasks",
                                      r"tessera_xcopa_it"),
         edit=setting("eval.tasks", ["tessera_xcopa"])),
    Case("set-without-equals", (*CFG, "--set", "train.lr", "model", "info"),
         (r"override 'train\.lr': expected dotted\.key=value",)),
    Case("set-bad-yaml", (*CFG, "--set", "run.name=[", "model", "info"),
         (r"override 'run\.name=\[': the value is not valid YAML; quote it",)),
    Case("config-missing", ("--config", "{ws}/nope.yaml", "model", "info"),
         (r"nope\.yaml: config file not found; check the path",)),
]

# Config files that are not YAML mappings (written by `prepare` next to the run folder).
CONFIG += [
    Case("config-yaml-syntax", ("--config", "{out}/../bad.yaml", "model", "info"),
         (r"bad\.yaml:3:\d+: not valid YAML", r"fix the syntax at that line"),
         prepare=writing("../bad.yaml", "run:\n  name: [demo\n  seed: 1\n")),
    Case("config-is-list", ("--config", "{out}/../list.yaml", "model", "info"),
         (r"list\.yaml: the top level is a list, not a mapping of sections",),
         prepare=writing("../list.yaml", "- run\n- data\n")),
    Case("config-is-folder", ("--config", "{out}", "model", "info"),
         (r"results/h: cannot be read as a UTF-8 text file", r"give a YAML file")),
    Case("config-is-binary", ("--config", "{out}/tokens/ita/train/00000.bin", "model", "info"),
         (r"train/00000\.bin: cannot be read as a UTF-8 text file",)),
]

# ---- data: sources the data stage cannot read ------------------------------------------------------------


def _only_source(**source) -> Callable[[dict], None]:
    """The run's one source replaced by `source` (an Italian text source by default)."""
    base = {"name": "src", "kind": "text", "language": "ita", "license": "CC0-1.0", "origin": "test",
            "tdm_opt_out": "none"}

    def edit(raw: dict) -> None:
        raw["data"]["sources"] = [{**base, **source}]
        for stage in raw["train"]["stages"]:
            stage["mixture"] = {"ita": 1.0}

    return edit


PREPARE = (*CFG, "data", "prepare")
DATA = [
    Case("text-path-missing", PREPARE, (r"nowhere/\*\.txt", r"src"),
         edit=_only_source(path="{ws}/nowhere/*.txt")),
    Case("jsonl-not-json", PREPARE, (r"docs\.jsonl", r"src"),
         edit=_only_source(kind="jsonl", path="{ws}/results/h/../docs.jsonl", text_field="text"),
         prepare=writing("../docs.jsonl", "{not json\n")),
    Case("jsonl-no-text-field", PREPARE, (r"docs\.jsonl", r"body"),
         edit=_only_source(kind="jsonl", path="{ws}/results/h/../docs.jsonl", text_field="body"),
         prepare=writing("../docs.jsonl", json.dumps({"text": "ciao " * 100}) + "\n")),
    Case("sqlite-not-a-database", PREPARE, (r"db\.sqlite", r"src"),
         edit=_only_source(kind="sqlite", path="{ws}/results/h/../db.sqlite", query="SELECT 1 AS text"),
         prepare=writing("../db.sqlite", "this is not sqlite\n" * 10)),
    Case("parquet-not-parquet", PREPARE, (r"p\.parquet", r"src"),
         edit=_only_source(kind="parquet", path="{ws}/results/h/../p.parquet"),
         prepare=writing("../p.parquet", "PAR1 garbage")),
    Case("pkg-not-installed", PREPARE,
         (r"package 'no_such_pkg' is not installed", r"pip install no_such_pkg"),
         edit=_only_source(path="pkg://no_such_pkg/a.txt")),
]

# ---- token files: what train and tokenize read ------------------------------------------------------------

TRAIN = (*CFG, "train", "--stage", "s1", "--until-step", "4")
TOKENIZE = (*CFG, "tokenize", "--language", "ita", "--part", "0")
TOKENS = [
    Case("bin-truncated", TRAIN,
         (r"tokens/ita/train/00001\.bin: \d+ bytes", r"truncated or from another run"),
         prepare=truncating("tokens/ita/train/00001.bin")),
    Case("meta-missing", TRAIN, (r"tokens/ita/train\.json: token metadata is missing",),
         prepare=deleting("tokens/ita/train.json")),
    Case("meta-garbled", TRAIN, (r"tokens/ita/train\.json: token metadata is not valid JSON",),
         prepare=writing("tokens/ita/train.json", "{oops")),
    Case("idx-missing", TRAIN, (r"tokens/eng/train/00000\.idx: missing",),
         prepare=deleting("tokens/eng/train/00000.idx")),
    Case("shard-meta-missing", TRAIN, (r"tokens/ita/train/00001\.json: token metadata is missing",),
         prepare=deleting("tokens/ita/train/00001.json")),
    Case("tokenizer-missing", TRAIN, (r"tokenizer/tokenizer\.json: tokenizer not found", r"tokenizer stage"),
         prepare=deleting("tokenizer/tokenizer.json")),
    Case("tokenize-shard-missing", TOKENIZE, (r"data/ita/train/00000\.jsonl\.zst", r"tessera data prepare")),
    Case("tokenize-part-out-of-range", (*CFG, "tokenize", "--language", "ita", "--part", "7"),
         (r"language 'ita' has no shard 7: it has shards 0 to 1", r"num_shards")),
    Case("tokenize-tokenizer-garbled", TOKENIZE,
         (r"tokenizer\.json: not a readable tokenizer\.json", r"tessera tokenizer train"),
         prepare=writing("tokenizer/tokenizer.json", '{"model": "mini"}')),
]

# ---- run state: what a resumed segment reads (formats and fallbacks: tests/train/test_resume.py) ---------

STATE_REMEDY = r"(?i)delete .*(latest|train the stage again)|restart"
STATE = [
    Case("meta-garbled", TRAIN, (r"state/s1", STATE_REMEDY),
         prepare=lambda out: (writing("state/s1/latest", "step-000002\n")(out),
                              writing("state/s1/step-000002/meta.json", "{garbled")(out))),
    Case("meta-missing", TRAIN, (r"state/s1", STATE_REMEDY),
         prepare=lambda out: (writing("state/s1/latest", "step-000002\n")(out),
                              writing("state/s1/step-000002/rank-0.pt", b"\0" * 16)(out))),
    Case("latest-points-outside", TRAIN, (r"state/s1", STATE_REMEDY),
         prepare=writing("state/s1/latest", "../../../../elsewhere\n")),
]

# ---- checkpoints: what export, evaluation and the next stage read ------------------------------------------

EXPORT = ("export-hf", "--checkpoint", "{out}/" + FIRST_CHECKPOINT, "--out", "{out}/../export")
CHECKPOINTS = [
    Case("folder-missing", ("export-hf", "--checkpoint", "{out}/train/s1/step-000099", "--out", "{out}/../e"),
         (r"step-000099: checkpoint folder not found",)),
    Case("meta-missing", EXPORT, (r"step-000004", r"tessera\.json"),
         prepare=deleting(f"{FIRST_CHECKPOINT}/tessera.json")),
    Case("meta-garbled", EXPORT, (r"step-000004", r"tessera\.json"),
         prepare=writing(f"{FIRST_CHECKPOINT}/tessera.json", "{garbled")),
    Case("weights-truncated", EXPORT,
         (r"model\.safetensors", r"(?i)truncated|sha256 differs", r"(?i)copy the checkpoint again|retrain"),
         prepare=truncating(f"{FIRST_CHECKPOINT}/model.safetensors")),
    Case("weights-missing", EXPORT, (r"step-000004", r"model\.safetensors"),
         prepare=deleting(f"{FIRST_CHECKPOINT}/model.safetensors")),
    Case("export-over-data",
         ("export-hf", "--checkpoint", "{out}/" + FIRST_CHECKPOINT, "--out", "{out}/tokens"),
         (r"--out .*tokens: exists and is not empty", r"give a new folder")),
    Case("eval-result-garbled", (*CFG, "eval", "report"),
         (r"eval/s1/step-000004\.json: not valid JSON", r"rerun its evaluate job"),
         prepare=writing("eval/s1/step-000004.json", "{not json")),
    Case("eval-folder-missing", (*CFG, "eval", "checkpoint", "--checkpoint", "{out}/train/s1/step-000077",
                                 "--out", "{out}/../r.json"),
         (r"step-000077: checkpoint folder not found",)),
]

# ---- release: the documents need every input, declared and measured ----------------------------------------

RELEASE_VERB = (*CFG, "release")
RELEASE = [
    Case("provider-empty", RELEASE_VERB, (r"release\.provider: required to release", r"release: section"),
         edit=setting("release.provider", "")),
    Case("intended-use-empty", RELEASE_VERB, (r"release\.intended_use: required to release",),
         edit=setting("release.intended_use", " ")),
    Case("final-checkpoint-missing", RELEASE_VERB, (rf"{LAST_CHECKPOINT}: checkpoint folder not found",),
         prepare=deleting(LAST_CHECKPOINT)),
    Case("manifest-missing", RELEASE_VERB, (r"data/manifest\.json: missing", r"run the data stage"),
         prepare=deleting("data/manifest.json")),
    Case("manifest-garbled", RELEASE_VERB, (r"data/manifest\.json: not valid JSON", r"run the data stage"),
         prepare=writing("data/manifest.json", "{")),
    Case("eval-report-missing", RELEASE_VERB, (r"reports/eval\.json: missing", r"snakemake eval_report"),
         prepare=writing("data/manifest.json", json.dumps({"sources": {}}))),
]

# ---- import: transformers folders a user gives -------------------------------------------------------------

IMPORT = ("import-hf", "--hf-dir", "{ws}/hf", "--out", "{ws}/imported")


def _hf_config(change: Callable[[dict], None], name: str = "config.json") -> Callable[[Path], None]:
    def prepare(out: Path) -> None:
        path = out.parent.parent / "hf" / name
        data = json.loads(path.read_text()) if path.is_file() else {}
        change(data)
        path.write_text(json.dumps(data))

    return prepare


IMPORTS = [
    Case("folder-missing", ("import-hf", "--hf-dir", "{ws}/nohf", "--out", "{ws}/imported"),
         (r"nohf: config\.json is missing; not a transformers model folder",)),
    Case("auto-map-config", IMPORT,
         (r"hf/config\.json: auto_map asks to run Python code", r"trust_remote_code"),
         prepare=_hf_config(lambda c: c.update(auto_map={"AutoConfig": "evil.Config"}))),
    Case("auto-map-tokenizer", IMPORT, (r"hf/tokenizer_config\.json: auto_map", r"without custom code"),
         prepare=_hf_config(lambda c: c.update(auto_map={"AutoTokenizer": ["evil.Tok", None]}),
                            "tokenizer_config.json")),
    Case("config-garbled", IMPORT, (r"hf/config\.json: not readable JSON",),
         prepare=lambda out: (out.parent.parent / "hf" / "config.json").write_text("{garbled")),
    Case("model-type-llama", IMPORT, (r"model_type 'llama' cannot be imported; supported: qwen3_moe",),
         prepare=_hf_config(lambda c: c.update(model_type="llama", architectures=["LlamaForCausalLM"]))),
    Case("hidden-act-gelu", IMPORT, (r"hidden_act = 'gelu' has no tessera equivalent", r"silu"),
         prepare=_hf_config(lambda c: c.update(hidden_act="gelu"))),
    Case("no-safetensors", IMPORT, (r"no \*\.safetensors weights", r"safe_serialization=True"),
         prepare=lambda out: (out.parent.parent / "hf" / "model.safetensors").unlink()),
    Case("out-over-results", ("import-hf", "--hf-dir", "{ws}/hf", "--out", "{out}"),
         (r"--out .*results/h: exists and is not empty", r"give a new folder")),
]

# ---- shell and paths: parse-time checks under Snakemake, path-forming arguments ----------------------------

SHELL = [
    Case("snakemake-config-override", ("--config", "run=x"),
         (r"snakemake --config run=x: key=value overrides are not passed to the jobs", r"overlay YAML"),
         tool="snakemake"),
    Case("snakemake-yaml-syntax", (), (r"config\.yaml:3:\d+: not valid YAML", r"fix the syntax"),
         prepare=lambda out: (out.parent.parent / "config.yaml").write_text("run:\n  name: [x\n"),
         tool="snakemake"),
    Case("snakemake-run-name-dotdot", (), (r"run\.name: '\.\.'", NAME_RULE), edit=setting("run.name", ".."),
         tool="snakemake"),
    Case("batch-vs-ranks", (),
         (r"batch_size: 4 is not a multiple of train\.micro_batch_size \(2\) x 3 ranks",),
         edit=setting("train.local_processes", 3), tool="snakemake"),
    Case("seq-len-vs-model", (), (r"seq_len: 128 exceeds the model's max_seq_len \(64\)",
                                  r"raise model\.overrides\.max_seq_len"),
         edit=setting("train.stages.0.seq_len", 128), tool="snakemake"),
    Case("ep-vs-ranks", (), (r"expert_parallel_size: 2 does not divide the 1 training ranks",),
         edit=setting("train.expert_parallel_size", 2), tool="snakemake"),
    Case("ep-vs-experts", (), (r"expert_parallel_size: 4 does not divide the model's 6 experts",),
         edit=both(setting("train.expert_parallel_size", 4), setting("train.local_processes", 4),
                   setting("train.stages.0.batch_size", 8), setting("train.stages.1.batch_size", 8),
                   setting("model.overrides", {"moe": {"num_experts": 6}})), tool="snakemake"),
    Case("eval-context-vs-model", (), (r"eval\.context_length: 512 exceeds the model's max_seq_len \(64\)",),
         edit=setting("eval.context_length", 512), tool="snakemake"),
    Case("tokenize-language-traversal", (*CFG, "tokenize", "--language", "../x", "--part", "0"),
         (r"--language '\.\./x': not one of ita, eng",)),
    Case("data-shard-language-traversal", (*CFG, "data", "shard", "--language", "../x", "--part", "0"),
         (r"--language '\.\./x': not one of ita, eng",)),
    Case("data-removals-language-traversal", (*CFG, "data", "removals", "--language", "../../x"),
         (r"--language '\.\./\.\./x': not one of ita, eng",)),
    Case("train-stage-traversal", (*CFG, "train", "--stage", "../s1"),
         (r"no stage named '\.\./s1'; stages: s1, s2",)),
    Case("fetch-source-traversal", (*CFG, "data", "fetch", "--source", "../../x"),
         (r"no source named '\.\./\.\./x'; sources:",)),
    Case("until-step-out-of-range", (*CFG, "train", "--stage", "s1", "--until-step", "99"),
         (r"--until-step 99: stage s1 has steps 1\.\.4",)),
    Case("eval-out-over-folder", (*CFG, "eval", "checkpoint", "--checkpoint", "{out}/" + FIRST_CHECKPOINT,
                                  "--out", "{out}/tokens"),
         (r"tokens", r"--out")),
]

CATALOGUE = {
    "config": CONFIG, "data": DATA, "token files": TOKENS, "run state": STATE, "checkpoints": CHECKPOINTS,
    "release": RELEASE, "import": IMPORTS, "shell/path": SHELL,
}
