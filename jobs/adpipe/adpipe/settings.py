"""Settings from the environment: the names of .env.example, the same in every job.

Credentials belong to one identity each. A job reads its own, under the names .env gives
them (the load: LOAD_WAREHOUSE_DSN, LOAD_AWS_ACCESS_KEY_ID, LOAD_AWS_SECRET_ACCESS_KEY), and
no other: a missing one is a settings error naming it (exit 2), never a run with the
operator's AWS_ACCESS_KEY_ID, which .env also holds. `make env` writes each identity's
settings, and nothing more, to its own env file (`docker run --env-file .env.load ...`)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from adpipe.errors import ConfigError

# A PostgreSQL duration as lock_timeout and statement_timeout take it: 500ms, 30s, 5min, 1h
DURATION = re.compile(r"[1-9][0-9]*(ms|s|min|h)")

# Every setting a job reads: what it means, and its default where it has one. `--help` lists
# a command's from here; .env.example holds the local values.
SETTINGS: dict[str, str] = {
    "WAREHOUSE_DSN": "PostgreSQL DSN of the job's role (required)",
    "WAREHOUSE_OWNER_DSN": "PostgreSQL DSN of the schema's owner; migrations only (required)",
    "WAREHOUSE_LOCK_TIMEOUT": "longest wait for a lock in PostgreSQL, then exit 4 (30s)",
    "WAREHOUSE_STATEMENT_TIMEOUT": "longest single statement, then exit 4 (30min)",
    "AWS_ACCESS_KEY_ID": "the job's S3 access key (required)",
    "AWS_SECRET_ACCESS_KEY": "its secret (required)",
    "S3_ENDPOINT_URL": "S3 endpoint (none: AWS)",
    "S3_BUCKET": "bucket (ad-data)",
    "AWS_DEFAULT_REGION": "region (us-east-1)",
    "AD_API_URL": "the ad API's base URL (required)",
    "EXTRACT_PAGE_SIZE": "records asked per page (1000)",
    "EXTRACT_MAX_PAGES": "pages a window may have; more is a runaway cursor (10000)",
    "EXTRACT_MAX_PAGE_BYTES": "largest page body read (64 MiB)",
    "EXTRACT_MAX_ATTEMPTS": "requests per page on 429, 5xx and lost connections (8)",
    "EXTRACT_RETRY_AFTER_MAX_SECONDS": "longest Retry-After obeyed, in seconds (60)",
    "EXTRACT_PAGE_DEADLINE_SECONDS": "longest time one page may take, retries included (120)",
    "LOAD_MAX_REJECTED_SHARE": "largest share of rejected records before nothing loads (0.01)",
    "LOAD_MAX_SHRINK_SHARE": "largest share of a window's rows a reload may drop (0.5)",
    "ARCHIVE_RETENTION_DAYS": "days kept in PostgreSQL before the archive moves them (30)",
    "RECONCILE_EXPECT_FROM": "first hour every hour is expected loaded, ISO 8601 (none: the "
    "first hour ever loaded)",
    "ADPIPE_LOG_LEVEL": "log level on stderr (INFO)",
    "ADPIPE_DEBUG": "1 prints a traceback with an unexpected failure",
}
WAREHOUSE = ("WAREHOUSE_DSN", "WAREHOUSE_LOCK_TIMEOUT", "WAREHOUSE_STATEMENT_TIMEOUT")
S3 = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "S3_ENDPOINT_URL",
    "S3_BUCKET",
    "AWS_DEFAULT_REGION",
)
LOGS = ("ADPIPE_LOG_LEVEL", "ADPIPE_DEBUG")


def describe(settings: Settings, names: Sequence[str]) -> str:
    """The settings part of a command's ``--help``: each name as the command reads it, and
    what it means."""
    if not names:
        return ""
    lines = ["settings (environment; make env writes them to the job's env file):"]
    for name in names:
        lines.append(f"  {settings.name(name)}\n      {SETTINGS[name]}")
    return "\n".join(lines)


def _get(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise ConfigError(
            f"setting {name} is missing",
            "set it in the environment: `make env` writes it to the job's env file "
            "(docker run --env-file .env.<job>; see .env.example)",
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
    """Every setting a job reads, for one identity. Required ones raise `ConfigError` when read
    and unset.

    Args:
        identity: whose S3 key the job reads (EXTRACT, LOAD, ARCHIVE, RECONCILE: the
            ``<IDENTITY>_AWS_*`` pair); empty for the operator's tools (``AWS_*``).
        role: whose warehouse DSN it reads (``<ROLE>_WAREHOUSE_DSN``); empty for the read-only
            ``WAREHOUSE_DSN``; None: the identity's.
    """

    def __init__(self, identity: str = "", role: str | None = None) -> None:
        self.identity = identity.upper()
        self.role = self.identity if role is None else role.upper()

    def name(self, setting: str) -> str:
        """The name this identity reads ``setting`` under."""
        prefix = {
            "WAREHOUSE_DSN": self.role,
            "AWS_ACCESS_KEY_ID": self.identity,
            "AWS_SECRET_ACCESS_KEY": self.identity,
        }.get(setting, "")
        return f"{prefix}_{setting}" if prefix else setting

    @property
    def warehouse_dsn(self) -> str:
        return _get(self.name("WAREHOUSE_DSN"))

    @property
    def warehouse_owner_dsn(self) -> str:
        """The owner's DSN: migrations only."""
        return _get("WAREHOUSE_OWNER_DSN")

    @property
    def aws_access_key_id(self) -> str:
        return _get(self.name("AWS_ACCESS_KEY_ID"))

    @property
    def aws_secret_access_key(self) -> str:
        return _get(self.name("AWS_SECRET_ACCESS_KEY"))

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
    def page_deadline(self) -> int:
        """Seconds one page may take, its retries and a slow body included."""
        return _whole("EXTRACT_PAGE_DEADLINE_SECONDS", "120", 1, 3600)

    @property
    def max_rejected_share(self) -> float:
        return _share("LOAD_MAX_REJECTED_SHARE", "0.01")

    @property
    def max_shrink_share(self) -> float:
        """A reload may lose at most this share of a window's committed rows."""
        return _share("LOAD_MAX_SHRINK_SHARE", "0.5")

    @property
    def expect_from(self) -> datetime | None:
        """The first hour reconcile expects every hour loaded from; None: the first ever."""
        text = os.environ.get("RECONCILE_EXPECT_FROM", "").strip()
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise ConfigError(
                f"setting RECONCILE_EXPECT_FROM is not an ISO 8601 time with an offset: {text!r}",
                "write it as 2026-11-20T00:00:00Z",
            )
        return moment.astimezone(UTC)

    @property
    def retention_days(self) -> int:
        return _whole("ARCHIVE_RETENTION_DAYS", "30", 1, 100_000)


@dataclass(frozen=True)
class EnvFile:
    """What one identity's env file holds: `make env` writes ``.env.<name>`` (mode 0600) with
    these settings, under the names `Settings(identity, role)` reads, from .env."""

    name: str
    identity: str
    role: str | None
    names: tuple[str, ...]

    @property
    def settings(self) -> Settings:
        return Settings(self.identity, self.role)


EXTRACT = (
    "AD_API_URL",
    "EXTRACT_PAGE_SIZE",
    "EXTRACT_MAX_PAGES",
    "EXTRACT_MAX_PAGE_BYTES",
    "EXTRACT_MAX_ATTEMPTS",
    "EXTRACT_RETRY_AFTER_MAX_SECONDS",
    "EXTRACT_PAGE_DEADLINE_SECONDS",
)
# one file per identity; each job's commands read exactly its file's settings (and LOGS)
ENV_FILES = {
    env.name: env
    for env in (
        EnvFile("extract_backup", "extract", None, (*S3, *EXTRACT)),
        EnvFile(
            "load",
            "load",
            None,
            (*WAREHOUSE, *S3, "LOAD_MAX_REJECTED_SHARE", "LOAD_MAX_SHRINK_SHARE"),
        ),
        EnvFile("archive", "archive", None, (*WAREHOUSE, *S3, "ARCHIVE_RETENTION_DAYS")),
        EnvFile("reconcile", "reconcile", "", (*WAREHOUSE, *S3, "RECONCILE_EXPECT_FROM")),
        EnvFile("migrate", "", "", ("WAREHOUSE_OWNER_DSN", *WAREHOUSE[1:])),
    )
}
