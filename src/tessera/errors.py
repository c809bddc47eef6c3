"""User-facing exceptions: each message names the file or key at fault and the remedy."""

__all__ = ["TesseraError", "ConfigError", "DataError", "CheckpointError", "ReleaseError", "PreemptedError"]


class TesseraError(Exception):
    """Base of every error tessera reports to a user (the CLI prints it without a traceback)."""


class ConfigError(TesseraError, ValueError):
    """A configuration value is wrong; the message names the key and the allowed values."""


class DataError(TesseraError):
    """An input file or source is unusable; the message names the source or file."""


class CheckpointError(TesseraError):
    """A checkpoint or run state is missing, truncated or incompatible."""


class ReleaseError(TesseraError):
    """The release cannot be documented truthfully: an input report is missing or stale, or a data source
    lacks an allowed licence; the message names the file or source and the remedy."""


class PreemptedError(TesseraError):
    """Training saved its state on a signal and stopped; rerunning the job resumes it."""
