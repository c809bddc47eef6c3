"""Checkpoint evaluation: per-language bits per byte and lm-eval downstream tasks."""
