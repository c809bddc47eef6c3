"""tessera: energy-measured multilingual Mixture-of-Experts training for European languages."""

__version__ = "0.1.0"
