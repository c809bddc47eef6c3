"""Training stages on a DeepSpeed engine: loop, schedule, checkpoints, callbacks."""
