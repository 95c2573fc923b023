"""The job contract's failures: each is one line a job prints as ``FAILED <job>: what failed
-- what to do``, and its exit code. 2 and 3 are final (Airflow does not retry them); 4 and 1
keep the task's retries."""

from __future__ import annotations


def backfill(first: str, last: str, *, reprocess: bool = True) -> str:
    """The command a refusal names to run api-load again, through Airflow, for the hours from
    ``first`` to ``last`` (``YYYY-MM-DDTHH:MM``); ``reprocess``: rerun hours that succeeded."""
    again = " REPROCESS=completed" if reprocess else ""
    return f"make backfill DAG=api-load FROM={first} TO={last}{again}"


class JobError(Exception):
    """A failure a job reports as one clear line, with what to do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(JobError):
    """A setting or an argument is missing or wrong."""

    exit_code = 2


class MissingSetting(ConfigError):
    """A setting a command reads is unset."""


class DataError(JobError):
    """The data does not hold what the contract promises (bad page, checksum, too many rejects)."""

    exit_code = 3


class UpstreamError(JobError):
    """A service the job needs (ad API, S3, PostgreSQL) failed or did not answer."""

    exit_code = 4


class PartitionDropped(UpstreamError):
    """The archive dropped a partition of a load's days, emptied, while the load waited for
    the day: a row lock is not queued, so the archive's next transaction can take the day
    before a load that waited on its last one. The load makes the partition again and loads
    once more."""
