"""The job contract's failures: each is one line a job prints as ``FAILED <job>: what failed
-- what to do``, and its exit code. 2 and 3 are final (Airflow does not retry them); 4 and 1
keep the task's retries. The exit codes every command's ``--help`` lists (`exit_codes`) are
read from these classes, so the list and the codes cannot drift apart."""

from __future__ import annotations


def backfill(first: str, last: str, *, reprocess: bool = True) -> str:
    """The command a refusal names to run api-load again, through Airflow, for the hours from
    ``first`` to ``last`` (``YYYY-MM-DDTHH:MM``); ``reprocess``: rerun hours that succeeded."""
    again = " REPROCESS=completed" if reprocess else ""
    return f"make backfill DAG=api-load FROM={first} TO={last}{again}"


class JobError(Exception):
    """A failure a job reports as one clear line, with what to do about it.

    Attributes:
        exit_code: the job's exit code after it; 1 is also the code of any exception that is
            not a `JobError` (a defect).
        means: what the code tells whoever ran the job, as ``--help`` lists it.
        retried: whether Airflow retries a task that exits with the code (the DAGs'
            ``FINAL_EXIT_CODES`` are the codes it does not retry).
    """

    exit_code = 1
    means = "unexpected: a defect (ADPIPE_DEBUG=1 prints the traceback)"
    retried = True

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(JobError):
    """A setting or an argument is missing or wrong."""

    exit_code = 2
    means = "a wrong argument or setting: fix it, then rerun"
    retried = False


class MissingSetting(ConfigError):
    """A setting a command reads is unset."""


class DataError(JobError):
    """The data does not hold what the contract promises (bad page, checksum, too many rejects)."""

    exit_code = 3
    means = "data that breaks the contract: the FAILED line says what to do"
    retried = False


class UpstreamError(JobError):
    """A service the job needs (ad API, S3, PostgreSQL) failed or did not answer."""

    exit_code = 4
    means = "a service (the ad API, S3, PostgreSQL) failed or did not answer"
    retried = True


class PartitionDropped(UpstreamError):
    """The archive dropped a partition of a load's days, emptied, while the load waited for
    the day: a row lock is not queued, so the archive's next transaction can take the day
    before a load that waited on its last one. The load makes the partition again and loads
    once more."""


def exit_codes() -> str:
    """The exit codes part of every command's ``--help``: 0, then each failure's code with
    what it means and whether Airflow retries it."""
    lines = [
        "exit codes (a failure also prints one line, FAILED <job>: what failed -- what to do;",
        "Airflow retries a task only after a code marked retried):",
        "  0  ok: the command did its work; its SUMMARY line holds the counts",
    ]
    for failure in (JobError, ConfigError, DataError, UpstreamError):
        retry = "retried" if failure.retried else "not retried"
        lines.append(f"  {failure.exit_code}  {failure.means}; {retry}")
    lines.append("  130  interrupted (Ctrl-C): left as any failure leaves it; retried")
    return "\n".join(lines)
