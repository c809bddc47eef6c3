"""Process groups from SLURM/torchrun environments, DeepSpeed engine set-up, expert parallelism."""
