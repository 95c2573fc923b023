"""Settings from the environment: the names of .env.example, the same in every job.

Credentials are read job-specific first: the load reads LOAD_WAREHOUSE_DSN and
LOAD_AWS_ACCESS_KEY_ID before WAREHOUSE_DSN and AWS_ACCESS_KEY_ID, so `docker run --env-file
.env` hands each job its own least-privilege identity."""

from __future__ import annotations

import os
import re

from adpipe.job import ConfigError

# A PostgreSQL duration as lock_timeout and statement_timeout take it: 500ms, 30s, 5min, 1h
DURATION = re.compile(r"[1-9][0-9]*(ms|s|min|h)")


def _get(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise ConfigError(
            f"setting {name} is missing",
            "set it in the environment (see .env.example; docker run --env-file .env)",
        )
    if value == "generate":
        raise ConfigError(
            f"setting {name} still reads 'generate', a placeholder",
            "run `make env` (it fills each 'generate' with a random secret) or set it",
        )
    return value


def _number(name: str, default: str, kind: type[int] | type[float]) -> int | float:
    text = _get(name, default)
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"setting {name} is not a number: {text!r}") from None


def _share(name: str, default: str) -> float:
    share = float(_number(name, default, float))
    if not 0 <= share <= 1:
        raise ConfigError(f"setting {name} must be between 0 and 1, not {share}")
    return share


def _whole(name: str, default: str, low: int, high: int) -> int:
    value = int(_number(name, default, int))
    if not low <= value <= high:
        raise ConfigError(f"setting {name} must be between {low} and {high}, not {value}")
    return value


def _duration(name: str, default: str) -> str:
    value = _get(name, default).strip()
    if not DURATION.fullmatch(value):
        raise ConfigError(
            f"setting {name} is not a duration: {value!r}", "write it as 500ms, 30s, 5min or 1h"
        )
    return value


class Settings:
    """Every setting a job reads. Required ones raise `ConfigError` when read and unset.
    ``job`` (EXTRACT, LOAD, ARCHIVE, RECONCILE) names the job whose credentials come first."""

    def __init__(self, job: str = "") -> None:
        self.job = job.upper()

    def _own(self, name: str, required: bool = True) -> str | None:
        """The job's own ``<JOB>_<name>``, else the common ``name``."""
        if self.job and os.environ.get(f"{self.job}_{name}"):
            return _get(f"{self.job}_{name}")
        if required or os.environ.get(name):
            return _get(name)
        return None

    @property
    def warehouse_dsn(self) -> str:
        return self._own("WAREHOUSE_DSN") or ""

    @property
    def warehouse_owner_dsn(self) -> str:
        """The owner's DSN: migrations only."""
        return _get("WAREHOUSE_OWNER_DSN")

    @property
    def aws_access_key_id(self) -> str | None:
        return self._own("AWS_ACCESS_KEY_ID", required=False)

    @property
    def aws_secret_access_key(self) -> str | None:
        return self._own("AWS_SECRET_ACCESS_KEY", required=False)

    @property
    def s3_endpoint_url(self) -> str | None:
        return os.environ.get("S3_ENDPOINT_URL") or None

    @property
    def s3_bucket(self) -> str:
        return _get("S3_BUCKET", "ad-data")

    @property
    def aws_region(self) -> str:
        return _get("AWS_DEFAULT_REGION", "us-east-1")

    @property
    def ad_api_url(self) -> str:
        return _get("AD_API_URL").rstrip("/")

    @property
    def lock_timeout(self) -> str:
        """How long a job waits for any lock in PostgreSQL before it gives up (exit 4)."""
        return _duration("WAREHOUSE_LOCK_TIMEOUT", "30s")

    @property
    def statement_timeout(self) -> str:
        """How long one statement of a job may run before PostgreSQL cancels it (exit 4)."""
        return _duration("WAREHOUSE_STATEMENT_TIMEOUT", "30min")

    @property
    def page_size(self) -> int:
        return _whole("EXTRACT_PAGE_SIZE", "1000", 1, 10_000)

    @property
    def max_pages(self) -> int:
        """Pages one window may have; more means a runaway cursor."""
        return _whole("EXTRACT_MAX_PAGES", "10000", 1, 10_000_000)

    @property
    def max_page_bytes(self) -> int:
        """Bytes one page body may have; a larger one is refused, not read."""
        return _whole("EXTRACT_MAX_PAGE_BYTES", str(64 << 20), 1024, 1 << 30)

    @property
    def max_attempts(self) -> int:
        """Requests for one page before the extract gives up (429, 5xx, lost connections)."""
        return _whole("EXTRACT_MAX_ATTEMPTS", "8", 1, 100)

    @property
    def retry_after_max(self) -> int:
        """The longest Retry-After the extract obeys, in seconds; longer hints are capped."""
        return _whole("EXTRACT_RETRY_AFTER_MAX_SECONDS", "60", 0, 3600)

    @property
    def max_rejected_share(self) -> float:
        return _share("LOAD_MAX_REJECTED_SHARE", "0.01")

    @property
    def max_shrink_share(self) -> float:
        """A reload may lose at most this share of a window's committed rows."""
        return _share("LOAD_MAX_SHRINK_SHARE", "0.5")

    @property
    def retention_days(self) -> int:
        return _whole("ARCHIVE_RETENTION_DAYS", "30", 1, 100_000)
