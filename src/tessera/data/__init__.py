"""The data stage: sources -> clean, deduplicated, split JSONL shards with a provenance manifest;
token files and the training loader."""
