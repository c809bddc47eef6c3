"""Training callbacks: everything the loop does besides training (metrics, logs, energy, progress)."""

from tessera.train.callbacks.base import Callback, StepRecord
from tessera.train.callbacks.energy import EnergyCallback
from tessera.train.callbacks.loggers import JsonlLogger, ProgressPrinter, TensorBoardLogger
from tessera.train.callbacks.metrics import MoEStatsCallback, ThroughputCallback

__all__ = ["Callback", "StepRecord", "EnergyCallback", "JsonlLogger", "ProgressPrinter", "TensorBoardLogger",
           "MoEStatsCallback", "ThroughputCallback"]
