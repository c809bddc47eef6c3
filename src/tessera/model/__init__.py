"""The decoder-only Mixture-of-Experts transformer (plain nn.Module, no parallelism)."""
