"""The model card's "How to run" section and the release's Ollama Modelfile: transformers, vLLM, llama.cpp
(the GGUF files of tessera.release.gguf) and Ollama, each with the command that runs the release folder."""

from __future__ import annotations

from tessera.release.gguf import RELEASE_TYPES, gguf_file_name

__all__ = ["how_to_run", "modelfile", "MODELFILE", "OLLAMA_GGUF_TYPE"]

MODELFILE = "Modelfile"
OLLAMA_GGUF_TYPE = "q8_0"
"""The GGUF file the Modelfile imports: half the size of f16 with near-identical outputs."""


def modelfile(model_name: str) -> str:
    """An Ollama Modelfile for the base model: the prompt passes through as is (no chat template)."""
    return "\n".join(
        [
            f'# ollama create {model_name} -f Modelfile && ollama run {model_name} "Nel mezzo del cammin"',
            f"FROM ./{gguf_file_name(model_name, OLLAMA_GGUF_TYPE)}",
            'TEMPLATE """{{ .Prompt }}"""',
            "PARAMETER temperature 0",
            "",
        ]
    )


def how_to_run(model_name: str, load_from: str) -> list[str]:
    """Markdown lines of the card's "How to run" section."""
    files = ", ".join(f"`{gguf_file_name(model_name, t)}`" for t in RELEASE_TYPES)
    q8 = gguf_file_name(model_name, OLLAMA_GGUF_TYPE)
    return [
        "## How to run",
        "",
        "A base model (no chat template): give it text to continue. The export uses only what "
        "transformers, vLLM and llama.cpp compute alike; tessera's tests check that llama.cpp's token ids, "
        "f32 logits and greedy continuation equal transformers' (vLLM and Ollama are not tested by tessera).",
        "",
        "**vLLM** serves the transformers folder (an OpenAI-compatible server on port 8000):",
        "",
        "```bash",
        f"vllm serve {load_from} --served-model-name {model_name}",
        "curl http://localhost:8000/v1/completions -H 'Content-Type: application/json' \\",
        f'  -d \'{{"model": "{model_name}", "prompt": "Nel mezzo del cammin", "max_tokens": 32, '
        '"temperature": 0}\'',
        "```",
        "",
        f"**llama.cpp** runs the GGUF files ({files}; checksums in `MANIFEST.sha256`):",
        "",
        "```bash",
        f'llama-completion -m {q8} -no-cnv -p "Nel mezzo del cammin" -n 32 --temp 0',
        f"llama-server -m {q8} --port 8080",
        "```",
        "",
        f"**Ollama** imports the q8_0 file with the `{MODELFILE}` in this folder:",
        "",
        "```bash",
        f"ollama create {model_name} -f {MODELFILE}",
        f'ollama run {model_name} "Nel mezzo del cammin"',
        "```",
        "",
    ]
