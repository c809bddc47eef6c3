"""Checks on the jobs Snakemake is about to submit, run once at workflow start (the Snakefile's onstart)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["check_slurm_account"]


def check_slurm_account(jobs: Iterable) -> None:
    """Stop before the first submission when a profile's account is an unset environment variable.

    SLURM profiles take the account from $TESSERA_ACCOUNT; Snakemake leaves an unset variable as the
    literal "$NAME", which sbatch would reject job by job. Dry runs skip onstart and show it as is.
    """
    from snakemake.exceptions import WorkflowError

    for job in jobs:
        account = str(job.resources.get("slurm_account", ""))
        if "$" in account:
            raise WorkflowError(
                f"SLURM account {account!r} (slurm_account in the profile) is an unset environment "
                f"variable: export {account.strip('${}')}=<your project account> and rerun"
            )
