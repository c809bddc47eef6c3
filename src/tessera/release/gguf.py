"""GGUF files of the release (llama.cpp, Ollama), written by llama.cpp's own converter.

The converter is `convert_hf_to_gguf.py` with its `conversion/` package and its `gguf-py` writer, from the
llama-cpp-python sdist of LLAMA_CPP_PYTHON_VERSION, the llama.cpp that the parity tests run (its writer,
not PyPI's `gguf` 0.19.0, which lacks enums this converter uses). None of it is in this repository: the
files are unpacked from the sdist (`pip download`) into a cache once (`python -m tessera.release.gguf
--fetch` where PyPI is reachable; offline nodes reuse it, or $TESSERA_LLAMA_CPP_CONVERTER names a copy),
and run unmodified in a subprocess.

One answer is ours. The converter names the pre-tokenizer (`tokenizer.ggml.pre`) by hashing the token
ids its test string gets, so it recognises only vocabularies it has seen: every newly trained one fails
with "BPE pre-tokenizer was not recognized". Our tokenizer's pre-tokenizer is Qwen2's, exactly (checked
here on tokenizer.json before converting), so the runner answers `get_vocab_base_pre` with "qwen2"; the
rest (tensors, vocabulary, merges, special tokens) is the converter's. tests/release/test_gguf.py checks
that llama.cpp then gives transformers' token ids, logits and greedy continuation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from tessera.errors import ConfigError, ReleaseError
from tessera.io import sha256_file
from tessera.model.config import ModelConfig
from tessera.tokenizer.train import LLAMA_CPP_PRE, PRETOKENIZE_PATTERN

__all__ = [
    "LLAMA_CPP_PYTHON_VERSION",
    "RELEASE_TYPES",
    "check_gguf_exportable",
    "check_tokenizer",
    "converter_dir",
    "fetch_converter",
    "gguf_file_name",
    "convert",
]

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
LLAMA_CPP_PYTHON_SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
"""PyPI's llama_cpp_python-0.3.36.tar.gz: the converter we run is the one we pinned, not whatever an index
or a cache serves under that name."""
"""The llama-cpp-python release whose llama.cpp converts the release and runs the parity tests."""
RELEASE_TYPES = ("f16", "q8_0")
"""GGUF types shipped in the release folder: f16 (full quality), q8_0 (half the size, near-lossless)."""
CONVERTER_ENV = "TESSERA_LLAMA_CPP_CONVERTER"
"""Environment variable naming a folder with convert_hf_to_gguf.py and conversion/ (else the cache)."""
_SDIST_ROOT = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/"
_CONVERTER_FILES = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/gguf/")


def gguf_file_name(model_name: str, outtype: str) -> str:
    return f"{model_name}-{outtype}.gguf"


def check_gguf_exportable(cfg: ModelConfig, where: str) -> None:
    """Refuse what llama.cpp's qwen3moe/qwen2moe cannot load (ConfigError naming the option); the
    routing it would misrun is refused by the transformers export already (tessera.model.hf)."""
    if cfg.num_dense_layers:
        raise ConfigError(
            f"{where}: model.num_dense_layers is {cfg.num_dense_layers}, but llama.cpp's qwen3moe and "
            "qwen2moe make every layer a MoE layer (the GGUF release would not load); train with "
            "model.overrides.num_dense_layers: 0"
        )
    if cfg.moe.num_shared_experts and cfg.tie_embeddings:
        raise ConfigError(
            f"{where}: model.tie_embeddings is true, but llama.cpp's qwen2moe needs its own output matrix "
            "(the GGUF release would not load); train with model.overrides.tie_embeddings: false"
        )
    if cfg.moe.num_shared_experts and cfg.num_heads * cfg.head_dim != cfg.d_model:
        raise ConfigError(
            f"{where}: model.head_dim {cfg.head_dim} x num_heads {cfg.num_heads} != d_model {cfg.d_model}, "
            "but llama.cpp's qwen2moe assumes they are equal; train with model.overrides.head_dim: "
            f"{cfg.d_model // cfg.num_heads}"
        )


def check_tokenizer(hf_dir: Path) -> None:
    """The tokenizer must be one llama.cpp runs exactly: tessera's pre-tokenizer, no normaliser."""
    path = hf_dir / "tokenizer.json"
    tokenizer = json.loads(path.read_text(encoding="utf-8"))
    steps = (tokenizer.get("pre_tokenizer") or {}).get("pretokenizers") or []
    pattern = steps[0].get("pattern", {}).get("Regex") if steps and steps[0].get("type") == "Split" else None
    if tokenizer.get("normalizer") is not None or pattern != PRETOKENIZE_PATTERN:
        raise ReleaseError(
            f"{path}: its normaliser or pre-tokenizer is not the one llama.cpp implements "
            f"({LLAMA_CPP_PRE!r}, no normaliser), so the GGUF files would tokenize differently from "
            "transformers; retrain the tokenizer with this version of tessera (`tessera tokenizer train`)"
        )


def converter_dir() -> Path:
    """Where convert_hf_to_gguf.py is: $TESSERA_LLAMA_CPP_CONVERTER, else the per-user cache."""
    if os.environ.get(CONVERTER_ENV):
        return Path(os.environ[CONVERTER_ENV])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "tessera" / f"llama.cpp-converter-{LLAMA_CPP_PYTHON_VERSION}"


def fetch_converter(folder: Path | None = None) -> Path:
    """Unpack the converter from the pinned llama-cpp-python sdist into `folder` (pip download, PyPI)."""
    folder = folder or converter_dir()
    if (folder / "convert_hf_to_gguf.py").is_file():
        return folder
    with tempfile.TemporaryDirectory() as tmp:
        # Our own interpreter's pip, no shell, fixed arguments.
        result = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             "--dest", tmp, f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        sdists = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if result.returncode or not sdists:
            raise ReleaseError(
                f"cannot download the llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist for llama.cpp's GGUF "
                f"converter ({result.stderr.strip()[-300:]}); run `python -m tessera.release.gguf --fetch` "
                f"where PyPI is reachable, or set {CONVERTER_ENV} to a folder holding convert_hf_to_gguf.py"
            )
        if (digest := sha256_file(sdists[0])) != LLAMA_CPP_PYTHON_SDIST_SHA256:
            raise ReleaseError(
                f"{sdists[0].name}: sha256 {digest} differs from the pinned {LLAMA_CPP_PYTHON_SDIST_SHA256}; "
                "the index served another file under this version: check the index (pip config list)"
            )
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent))
        with tarfile.open(sdists[0]) as sdist:
            for member in sdist.getmembers():
                name = member.name.removeprefix(_SDIST_ROOT)
                if member.isfile() and name != member.name and name.startswith(_CONVERTER_FILES):
                    member.name = name
                    sdist.extract(member, staging, filter="data")
    try:
        staging.rename(folder)
    except OSError:  # another process unpacked it meanwhile
        shutil.rmtree(staging)
        if not (folder / "convert_hf_to_gguf.py").is_file():
            raise
    return folder


def convert(hf_dir: Path, out_file: Path, outtype: str) -> Path:
    """Run llama.cpp's converter on a transformers folder; `outtype` f32, f16, bf16 or q8_0."""
    check_tokenizer(hf_dir)
    converter = fetch_converter()
    # Our own interpreter runs this module's runner on paths we built; no shell.
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "tessera.release.gguf", str(converter), str(hf_dir), str(out_file), outtype],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode or not out_file.is_file():
        raise ReleaseError(f"llama.cpp's converter failed on {hf_dir}:\n{result.stderr.strip()[-2000:]}")
    return out_file


def _run_converter(converter: str, hf_dir: str, out_file: str, outtype: str) -> None:
    """In the subprocess: the unmodified converter, told the pre-tokenizer (see the module docstring)."""
    sys.path.insert(0, converter)
    import convert_hf_to_gguf
    from conversion.base import TextModel

    TextModel.get_vocab_base_pre = lambda self, tokenizer: LLAMA_CPP_PRE
    sys.argv = ["convert_hf_to_gguf.py", hf_dir, "--outfile", out_file, "--outtype", outtype]
    convert_hf_to_gguf.main()


if __name__ == "__main__":
    if sys.argv[1:] == ["--fetch"]:
        print(fetch_converter())
    else:
        _run_converter(*sys.argv[1:])
