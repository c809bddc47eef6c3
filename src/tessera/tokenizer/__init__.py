"""The multilingual byte-level BPE tokenizer and its fertility report."""
