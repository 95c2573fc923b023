"""Settings from the environment: the names of .env.example, the same in every job.

Credentials belong to one identity each. A job reads its own, under the names .env gives
them (the load: LOAD_WAREHOUSE_DSN, LOAD_AWS_ACCESS_KEY_ID, LOAD_AWS_SECRET_ACCESS_KEY), and
no other: a missing one is a settings error naming it (exit 2), never a run with the
operator's AWS_ACCESS_KEY_ID, which .env also holds. `make env` writes each identity's
settings, and nothing more, to its own env file (`docker run --env-file .env.load ...`)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from adpipe.errors import ConfigError, MissingSetting
from adpipe.grid import STEPS

Number = TypeVar("Number", int, float)

# A PostgreSQL duration as lock_timeout and statement_timeout take it: 500ms, 30s, 5min, 1h
DURATION = re.compile(r"[1-9][0-9]*(ms|s|min|h)")


def text(name: str, value: str) -> str:
    return value


def url(name: str, value: str) -> str:
    """An http(s) base URL; a credential goes in its own setting, never in the URL's
    userinfo (which every record of the URL would have to leave out)."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"setting {name} is not an http(s) URL: {shown_url(value)!r}",
            "write it as https://host[:port][/path]",
        )
    if parts.username or parts.password or parts.fragment:
        raise ConfigError(
            f"setting {name} holds a user, a password or a fragment: {shown_url(value)!r}",
            "give the API's token as EXTRACT_AD_API_TOKEN (through Airflow: the ad_api "
            "connection's password) and its URL without them",
        )
    return value.strip().rstrip("/")


# query parameters whose value is a credential, whatever the API calls it
SECRET_QUERY = re.compile(r"(?i)(token|key|secret|password|passwd|signature|sig|auth|credential)")


def shown_url(address: str) -> str:
    """``address`` as it may be recorded (a manifest's source, a SUMMARY, a failure, lineage):
    no userinfo, and the value of every query parameter that names a credential replaced by
    ``***``. Backups are kept forever; a token in one would be too."""
    parts = urlsplit(address)
    netloc = parts.hostname or ""
    if ":" in netloc:  # an IPv6 address
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    query = urlencode(
        [
            (key, "***" if SECRET_QUERY.search(key) else found)
            for key, found in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


# HTTP header names (RFC 9110's token)
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def api_auth(name: str, value: str) -> str:
    """How the ad API wants its credential: ``none``, ``bearer`` (Authorization: Bearer
    <token>) or ``header:<Name>`` (the token as that header's value, e.g. header:X-Api-Key)."""
    value = value.strip()
    kind, _, header = value.partition(":")
    if value in ("none", "bearer") or (kind == "header" and HEADER_NAME.fullmatch(header)):
        return value
    raise ConfigError(
        f"setting {name} is not an ad API authentication: {value!r}",
        "write none, bearer, or header:<Name> (e.g. header:X-Api-Key)",
    )


def whole(low: int, high: int) -> Callable[[str, str], int]:
    """A parser of whole numbers from ``low`` to ``high``."""
    return _ranged(int, "a whole number", low, high)


def decimal(low: int, high: int) -> Callable[[str, str], float]:
    """A parser of numbers from ``low`` to ``high``, fractions allowed."""
    return _ranged(float, "a number", low, high)


def _ranged(
    convert: Callable[[str], Number], kind: str, low: int, high: int
) -> Callable[[str, str], Number]:
    def parse(name: str, value: str) -> Number:
        try:
            number = convert(value)
        except ValueError:
            raise ConfigError(f"setting {name} is not {kind}: {value!r}") from None
        if not low <= number <= high:
            raise ConfigError(f"setting {name} must be between {low} and {high}, not {number}")
        return number

    return parse


share = decimal(0, 1)


def step(name: str, value: str) -> int:
    minutes = whole(1, 1440)(name, value)
    if minutes not in STEPS:
        raise ConfigError(
            f"setting {name} must divide an hour or a day into whole windows, not {minutes}",
            f"one of {', '.join(map(str, STEPS))}",
        )
    return minutes


def duration(name: str, value: str) -> str:
    value = value.strip()
    if not DURATION.fullmatch(value):
        raise ConfigError(
            f"setting {name} is not a duration: {value!r}", "write it as 500ms, 30s, 5min or 1h"
        )
    return value


def moment(name: str, value: str) -> datetime:
    try:
        found = datetime.fromisoformat(value.strip())
    except ValueError:
        found = None
    if found is None or found.tzinfo is None:
        raise ConfigError(
            f"setting {name} is not an ISO 8601 time with an offset: {value!r}",
            "write it as 2026-11-20T00:00:00Z",
        )
    return found.astimezone(UTC)


@dataclass(frozen=True)
class Setting:
    """One setting a job reads: the only place its meaning, default and parsing are written.

    Attributes:
        name: its name in .env.example, without an identity's prefix.
        help: what it means, as ``--help`` shows it.
        default: its value when unset; None: required; "": unset means what ``help`` says
            (the setting reads as None).
        parse: turns its text into its value, or raises `ConfigError` naming it.
        whose: "role" or "identity": the setting is read under that prefix
            (``LOAD_WAREHOUSE_DSN``); "": under its own name.
        seam: a fault test's hook (a pause before a commit): read like any other setting,
            so a test sets it in a job's environment, but listed nowhere a user looks
            (``--help``, .env.example, the env files `make env` writes), so no deployment
            sets it by accident.
        secret: its value is a credential, never shown (a job's SUMMARY lists the others).
        connection: an Airflow connection carries it to a task (``adpipe_dags.jobs.
            connection_env``); every other setting a task's identity reads reaches it as
            ``ADPIPE_<NAME>`` (`airflow_env`).
    """

    name: str
    help: str
    default: str | None = None
    parse: Callable[[str, str], Any] = text
    whose: str = ""
    seam: bool = False
    secret: bool = False
    connection: bool = False

    def describe(self) -> str:
        """Its help, with its default (or that it is required)."""
        if self.default is None:
            return f"{self.help} (required)"
        return f"{self.help} ({self.default})" if self.default else self.help


SETTINGS = {
    setting.name: setting
    for setting in (
        Setting(
            "WAREHOUSE_DSN",
            "PostgreSQL DSN of the job's role",
            whose="role",
            secret=True,
            connection=True,
        ),
        Setting(
            "WAREHOUSE_OWNER_DSN",
            "PostgreSQL DSN of the schema's owner; migrations only",
            secret=True,
        ),
        Setting(
            "WAREHOUSE_LOCK_TIMEOUT",
            "longest wait for a lock in PostgreSQL, then exit 4",
            "30s",
            duration,
        ),
        Setting(
            "WAREHOUSE_STATEMENT_TIMEOUT",
            "longest single statement, then exit 4",
            "30min",
            duration,
        ),
        Setting("AWS_ACCESS_KEY_ID", "the job's S3 access key", whose="identity", connection=True),
        Setting(
            "AWS_SECRET_ACCESS_KEY", "its secret", whose="identity", secret=True, connection=True
        ),
        Setting("S3_ENDPOINT_URL", "S3 endpoint; unset: AWS", "", connection=True),
        Setting("S3_BUCKET", "bucket", "ad-data", connection=True),
        Setting("AWS_DEFAULT_REGION", "region", "us-east-1", connection=True),
        Setting(
            "S3_CA_BUNDLE",
            "CA certificates (PEM file) the S3 endpoint's certificate must chain to; unset: "
            "the system's",
            "",
        ),
        Setting("AD_API_URL", "the ad API's base URL", parse=url, connection=True),
        Setting(
            "AD_API_AUTH",
            "how the ad API takes its credential: none, bearer (Authorization: Bearer), or "
            "header:<Name> (e.g. header:X-Api-Key)",
            "none",
            api_auth,
            connection=True,
        ),
        Setting(
            "AD_API_TOKEN",
            "the ad API's token or key, sent as AD_API_AUTH says; required unless it is none",
            "",
            whose="identity",
            secret=True,
            connection=True,
        ),
        Setting(
            "WINDOW_MINUTES",
            "the window grid: minutes from 00:00 UTC a window starts and ends on; the api-load "
            "DAG's step",
            "60",
            step,
        ),
        Setting(
            "API_LATENESS_MINUTES",
            "how long after a window ends the ad API has published all its records: the "
            "api-load DAG extracts a window only then",
            "0",
            whole(0, 1440),
        ),
        Setting(
            "API_LOOKBACK_WINDOWS",
            "earlier windows each api-load run extracts again, loading those whose backup "
            "changed (records the API published late); 0: none",
            "0",
            whole(0, 48),
        ),
        Setting(
            "EXTRACT_PAGE_SIZE",
            "records asked per page: the most the API allows, fewer requests and backup objects",
            "10000",
            whole(1, 10_000),
        ),
        Setting(
            "EXTRACT_MAX_PAGES",
            "pages a window may have; more is a runaway cursor",
            "10000",
            whole(1, 10_000_000),
        ),
        Setting(
            "EXTRACT_MAX_PAGE_BYTES",
            "largest page body read, in bytes; a larger one is refused",
            str(64 << 20),
            whole(1024, 1 << 30),
        ),
        Setting(
            "EXTRACT_MAX_ATTEMPTS",
            "requests per page on 429, 5xx and lost connections",
            "8",
            whole(1, 100),
        ),
        Setting(
            "EXTRACT_RETRY_AFTER_MAX_SECONDS",
            "longest Retry-After obeyed, in seconds; longer hints are capped",
            "60",
            whole(0, 3600),
        ),
        Setting(
            "EXTRACT_PAGE_DEADLINE_SECONDS",
            "longest time one page may take, retries and a slow body included",
            "120",
            whole(1, 3600),
        ),
        Setting(
            "LOAD_MAX_REJECTED_SHARE",
            "largest share of rejected records before nothing loads",
            "0.01",
            share,
        ),
        Setting(
            "LOAD_MAX_SHRINK_SHARE",
            "largest share of a window's rows a reload may drop",
            "0.5",
            share,
        ),
        Setting(
            "ARCHIVE_RETENTION_DAYS",
            "days kept in PostgreSQL before the archive moves them; at least 2, so a run "
            "dated tomorrow never moves yesterday, whose last hour may still be loading",
            "30",
            whole(2, 100_000),
        ),
        Setting(
            "ARCHIVE_PAUSE_BEFORE_COMMIT_SECONDS",
            "fault tests only: seconds the archive waits before each day's commit, so a test "
            "can kill the job or cut its connection there",
            "0",
            decimal(0, 3600),
            seam=True,
        ),
        Setting(
            "RECONCILE_EXPECT_FROM",
            "first hour every hour is expected loaded, ISO 8601; unset: the first hour ever loaded",
            "",
            moment,
        ),
        Setting(
            "RECONCILE_SETTLE_MINUTES",
            "minutes a window's newest backup version is given for its load before reconcile "
            "names it unloaded (a lookback's re-extract may be loading it)",
            "30",
            whole(0, 1440),
        ),
        Setting(
            "API_LOAD_DEADLINE_MINUTES",
            "an hour's load is late when it ends more than this many minutes after its window",
            "20",
            decimal(1, 1440),
        ),
        Setting(
            "HEALTH_PORT",
            "port the health service listens on, on 127.0.0.1",
            "8082",
            whole(1, 65535),
        ),
        Setting(
            "HEALTH_TOKEN",
            "the bearer token every request to the health service must carry",
            secret=True,
        ),
        Setting("ADPIPE_LOG_LEVEL", "log level on stderr", "INFO"),
        Setting("ADPIPE_DEBUG", "1 prints a traceback with an unexpected failure", ""),
    )
}
WAREHOUSE = ("WAREHOUSE_DSN", "WAREHOUSE_LOCK_TIMEOUT", "WAREHOUSE_STATEMENT_TIMEOUT")
S3 = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "S3_ENDPOINT_URL",
    "S3_BUCKET",
    "AWS_DEFAULT_REGION",
    "S3_CA_BUNDLE",
)
EXTRACT = (
    "AD_API_URL",
    "AD_API_AUTH",
    "AD_API_TOKEN",
    "WINDOW_MINUTES",
    "EXTRACT_PAGE_SIZE",
    "EXTRACT_MAX_PAGES",
    "EXTRACT_MAX_PAGE_BYTES",
    "EXTRACT_MAX_ATTEMPTS",
    "EXTRACT_RETRY_AFTER_MAX_SECONDS",
    "EXTRACT_PAGE_DEADLINE_SECONDS",
)
LOGS = ("ADPIPE_LOG_LEVEL", "ADPIPE_DEBUG")  # read by every command, before its settings
# read by the api-load DAG itself, not a job: when it extracts a window, and which again
DAG_SETTINGS = ("API_LATENESS_MINUTES", "API_LOOKBACK_WINDOWS")


def value(name: str) -> Any:
    """A setting read under its own name (the logs'), for code that runs before a command's
    settings exist."""
    return Settings(names=(name,)).read(name)


class Settings:
    """The settings one command reads, for one identity. `check` reads them all when the
    command starts; reading one the command does not list is a defect, not a setting.

    Args:
        identity: whose S3 key the job reads (EXTRACT, LOAD, ARCHIVE, RECONCILE: the
            ``<IDENTITY>_AWS_*`` pair); empty for the operator's tools (``AWS_*``).
        role: whose warehouse DSN it reads (``<ROLE>_WAREHOUSE_DSN``); empty for the read-only
            ``WAREHOUSE_DSN``; None: the identity's.
        names: the settings it may read (a command's list); None: any (tools and tests).
    """

    def __init__(
        self, identity: str = "", role: str | None = None, names: Sequence[str] | None = None
    ) -> None:
        self.identity = identity.upper()
        self.role = self.identity if role is None else role.upper()
        self.names = None if names is None else tuple(names)

    def name(self, setting: str) -> str:
        """The name this identity reads ``setting`` under."""
        whose = SETTINGS[setting].whose
        prefix = {"role": self.role, "identity": self.identity}.get(whose, "")
        return f"{prefix}_{setting}" if prefix else setting

    def read(self, setting: str) -> Any:
        """The setting's value, parsed; `ConfigError` naming it (as read) when it is missing,
        a placeholder or wrong."""
        if self.names is not None and setting not in self.names:
            raise RuntimeError(f"reads {setting}, which its command does not list")
        known, name = SETTINGS[setting], self.name(setting)
        found = os.environ.get(name, "") or known.default
        if found is None:
            raise MissingSetting(
                f"setting {name} is missing",
                "set it in the environment: `make env` writes it to the job's env file "
                "(docker run --env-file .env.<job>; see .env.example)",
            )
        if found == "generate":
            raise ConfigError(
                f"setting {name} still reads 'generate', a placeholder",
                "run `make env` (it fills each 'generate' with a random secret) or set it",
            )
        return known.parse(name, found) if found else None

    def check(self) -> None:
        """Read every setting the command lists: all the missing ones in one `ConfigError`,
        else the first that is wrong."""
        missing = []
        for setting in self.names or ():
            try:
                self.read(setting)
            except MissingSetting:
                missing.append(self.name(setting))
        if missing:
            raise MissingSetting(
                f"setting{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                f"{'are' if len(missing) > 1 else 'is'} missing",
                "set them in the environment: `make env` writes them to the job's env file "
                "(docker run --env-file .env.<job>; see .env.example)",
            )

    def shown(self) -> dict[str, str]:
        """What the command read, for its SUMMARY: every setting it lists under the name it
        read, as text (its default where unset); a secret only as whether it is set, a URL
        as `shown_url` records it."""
        found = {}
        for setting in listed(self.names or ()):
            known, name = SETTINGS[setting], self.name(setting)
            raw = os.environ.get(name, "") or known.default or ""
            if known.secret:
                found[name] = "(set)" if raw else "(unset)"
            else:
                found[name] = shown_url(raw) if known.parse is url else raw
        return found

    def describe(self) -> str:
        """The settings part of a command's ``--help``: each as the command reads it, seams
        aside."""
        lines = ["settings (environment; make env writes them to the job's env file):"]
        for setting in listed((*(self.names or ()), *LOGS)):
            lines.append(f"  {self.name(setting)}\n      {SETTINGS[setting].describe()}")
        return "\n".join(lines)

    @property
    def warehouse_dsn(self) -> str:
        return self.read("WAREHOUSE_DSN")

    @property
    def warehouse_owner_dsn(self) -> str:
        return self.read("WAREHOUSE_OWNER_DSN")

    @property
    def aws_access_key_id(self) -> str:
        return self.read("AWS_ACCESS_KEY_ID")

    @property
    def aws_secret_access_key(self) -> str:
        return self.read("AWS_SECRET_ACCESS_KEY")

    @property
    def s3_endpoint_url(self) -> str | None:
        return self.read("S3_ENDPOINT_URL")

    @property
    def s3_bucket(self) -> str:
        return self.read("S3_BUCKET")

    @property
    def aws_region(self) -> str:
        return self.read("AWS_DEFAULT_REGION")

    @property
    def s3_ca_bundle(self) -> str | None:
        return self.read("S3_CA_BUNDLE")

    @property
    def ad_api_url(self) -> str:
        return self.read("AD_API_URL")

    @property
    def ad_api_credential(self) -> tuple[str, str]:
        """How the ad API takes its credential (AD_API_AUTH) and the credential; a
        `MissingSetting` naming the token when the API wants one and none is set."""
        auth = self.read("AD_API_AUTH")
        token = (self.read("AD_API_TOKEN") or "").strip()  # a pasted token's line end
        if any(not 0x21 <= ord(c) <= 0x7E for c in token):
            # an HTTP header holds printable ASCII only; what the token is stays unsaid
            raise ConfigError(
                f"setting {self.name('AD_API_TOKEN')} holds a character an HTTP header cannot "
                "carry (a space, a control character or one beyond ASCII)",
                "set it to the token alone, as the API issued it",
            )
        if auth != "none" and not token:
            raise MissingSetting(
                f"setting {self.name('AD_API_TOKEN')} is missing: "
                f"{self.name('AD_API_AUTH')} is {auth}",
                "set it in the environment (through Airflow: the ad_api connection's password; "
                "by hand: `make env` writes it to .env.extract_backup from .env)",
            )
        return auth, token

    @property
    def lock_timeout(self) -> str:
        return self.read("WAREHOUSE_LOCK_TIMEOUT")

    @property
    def statement_timeout(self) -> str:
        return self.read("WAREHOUSE_STATEMENT_TIMEOUT")

    @property
    def page_size(self) -> int:
        return self.read("EXTRACT_PAGE_SIZE")

    @property
    def max_pages(self) -> int:
        return self.read("EXTRACT_MAX_PAGES")

    @property
    def max_page_bytes(self) -> int:
        return self.read("EXTRACT_MAX_PAGE_BYTES")

    @property
    def max_attempts(self) -> int:
        return self.read("EXTRACT_MAX_ATTEMPTS")

    @property
    def retry_after_max(self) -> int:
        return self.read("EXTRACT_RETRY_AFTER_MAX_SECONDS")

    @property
    def page_deadline(self) -> int:
        return self.read("EXTRACT_PAGE_DEADLINE_SECONDS")

    @property
    def window_minutes(self) -> int:
        return self.read("WINDOW_MINUTES")

    @property
    def max_rejected_share(self) -> float:
        return self.read("LOAD_MAX_REJECTED_SHARE")

    @property
    def max_shrink_share(self) -> float:
        return self.read("LOAD_MAX_SHRINK_SHARE")

    @property
    def retention_days(self) -> int:
        return self.read("ARCHIVE_RETENTION_DAYS")

    @property
    def pause_before_commit(self) -> float:
        return self.read("ARCHIVE_PAUSE_BEFORE_COMMIT_SECONDS")

    @property
    def expect_from(self) -> datetime | None:
        return self.read("RECONCILE_EXPECT_FROM")

    @property
    def settle(self) -> timedelta:
        return timedelta(minutes=self.read("RECONCILE_SETTLE_MINUTES"))

    @property
    def load_deadline_minutes(self) -> float:
        return self.read("API_LOAD_DEADLINE_MINUTES")

    @property
    def health_port(self) -> int:
        return self.read("HEALTH_PORT")

    @property
    def health_token(self) -> str:
        return self.read("HEALTH_TOKEN")


def listed(names: Sequence[str]) -> tuple[str, ...]:
    """The settings of ``names`` a user sees (in ``--help``, .env.example, an env file): all
    but the seams."""
    return tuple(name for name in names if not SETTINGS[name].seam)


@dataclass(frozen=True)
class EnvFile:
    """What one identity's env file holds: `make env` writes ``.env.<name>`` (mode 0600) with
    the settings every one of the identity's commands reads (``names``), seams aside
    (``written``), under the names `Settings(identity, role)` reads, from .env."""

    name: str
    identity: str
    role: str | None
    names: tuple[str, ...]

    def settings(self, names: Sequence[str] | None = None) -> Settings:
        """The identity's settings; with ``names``, only those may be read."""
        return Settings(self.identity, self.role, names)

    @property
    def written(self) -> tuple[str, ...]:
        """What `make env` writes to the file and .env.example holds: its settings but the
        seams."""
        return listed(self.names)

    @property
    def passed(self) -> tuple[str, ...]:
        """What a DAG's task of this identity passes as settings (``ADPIPE_<NAME>`` in
        Airflow's environment, `airflow_env`): what it reads but the seams, what its
        Airflow connections carry and secrets (which only a connection carries)."""
        return tuple(
            name
            for name in self.written
            if not SETTINGS[name].connection and not SETTINGS[name].secret
        )


# one file per identity, holding what its commands read (each command lists its own)
ENV_FILES = {
    env.name: env
    for env in (
        EnvFile("extract_backup", "extract", None, (*S3, *EXTRACT)),
        EnvFile(
            "load",
            "load",
            None,
            (
                *WAREHOUSE,
                *S3,
                "WINDOW_MINUTES",
                "LOAD_MAX_REJECTED_SHARE",
                "LOAD_MAX_SHRINK_SHARE",
            ),
        ),
        EnvFile(
            "archive",
            "archive",
            None,
            (
                *WAREHOUSE,
                *S3,
                "WINDOW_MINUTES",
                "ARCHIVE_RETENTION_DAYS",
                "ARCHIVE_PAUSE_BEFORE_COMMIT_SECONDS",
            ),
        ),
        EnvFile(
            "reconcile",
            "reconcile",
            "",
            (
                *WAREHOUSE,
                *S3,
                "WINDOW_MINUTES",
                "RECONCILE_EXPECT_FROM",
                "RECONCILE_SETTLE_MINUTES",
            ),
        ),
        EnvFile(
            "health",
            "reconcile",
            "",
            (
                *WAREHOUSE,
                *S3,
                "WINDOW_MINUTES",
                "RECONCILE_EXPECT_FROM",
                "RECONCILE_SETTLE_MINUTES",
                "API_LOAD_DEADLINE_MINUTES",
                "HEALTH_PORT",
                "HEALTH_TOKEN",
            ),
        ),
        EnvFile("migrate", "", "", ("WAREHOUSE_OWNER_DSN", *WAREHOUSE[1:])),
    )
}


def reference() -> str:
    """docs/settings.md: per identity's env file, each setting under the name its jobs read,
    its default and meaning, from `SETTINGS` and `ENV_FILES` (`make settings-doc` writes it;
    tests/unit/test_docs.py holds the file to it)."""
    lines = [
        "# Settings",
        "",
        "Every setting each job identity reads, its default and meaning ([README](../README.md)).",
        "",
        "Generated from `adpipe.settings` (`SETTINGS`, `ENV_FILES`) by `make settings-doc`; a test",
        "fails when it differs. Each job identity's env file (`make env` writes `.env.<name>` from",
        "`.env`) holds exactly these names; a job reads no other (no fallback between identities).",
    ]
    lines += [
        "",
        "## The api-load DAG (`.env.airflow`)",
        "",
        "Read by the DAG itself when Airflow parses it, as `ADPIPE_<NAME>`.",
        "",
        "| name | default | what |",
        "| --- | --- | --- |",
    ]
    for setting in DAG_SETTINGS:
        known = SETTINGS[setting]
        lines.append(f"| `{setting}` | `{known.default}` | {known.help} |")
    for env in ENV_FILES.values():
        reader = env.settings()
        lines += [
            "",
            f"## `.env.{env.name}`",
            "",
            "| name | default | what |",
            "| --- | --- | --- |",
        ]
        for setting in env.written:
            known = SETTINGS[setting]
            default = {None: "required", "": ""}.get(known.default, f"`{known.default}`")
            what = known.help.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{reader.name(setting)}` | {default} | {what} |")
    return "\n".join(lines) + "\n"


def airflow_env(known: dict[str, str]) -> dict[str, str]:
    """What Airflow's services need to hand each identity its settings, from .env's values
    (``known``): ``ADPIPE_<NAME>`` for every setting some identity's tasks are passed
    (`EnvFile.passed`; empty values left out: the job's default), and ``ADPIPE_JOB_SETTINGS``,
    which names each identity's, so a DAG task passes exactly what its identity reads
    (``adpipe_dags.jobs.job_task``). `make env` writes them to .env.airflow, compose hands
    that file to Airflow's containers."""
    env = {
        "ADPIPE_JOB_SETTINGS": json.dumps(
            {name: list(file.passed) for name, file in ENV_FILES.items()}, separators=(",", ":")
        )
    }
    for name in (*DAG_SETTINGS, *(n for file in ENV_FILES.values() for n in file.passed)):
        if known.get(name):
            SETTINGS[name].parse(name, known[name])  # a typo fails here, not in a DAG
            env[f"ADPIPE_{name}"] = known[name]
    check_late_records(known)
    return env


def check_late_records(known: dict[str, str]) -> None:
    """The late-record settings against the others they meet: a run that waits
    API_LATENESS_MINUTES after its window must still end before API_LOAD_DEADLINE_MINUTES
    (from the window's end, as the DAG's deadline and the health page count it), and the
    lookback must not reach days the archive may have moved (ARCHIVE_RETENTION_DAYS)."""

    def number(name: str) -> Any:
        return SETTINGS[name].parse(name, known.get(name) or SETTINGS[name].default or "0")

    lateness, deadline = number("API_LATENESS_MINUTES"), number("API_LOAD_DEADLINE_MINUTES")
    if lateness and lateness >= deadline:
        raise ConfigError(
            f"setting API_LATENESS_MINUTES ({lateness}) is not less than "
            f"API_LOAD_DEADLINE_MINUTES ({deadline:g}): every run would be late",
            "raise API_LOAD_DEADLINE_MINUTES above the lateness plus a run's time",
        )
    reach = number("API_LOOKBACK_WINDOWS") * number("WINDOW_MINUTES")
    kept = (number("ARCHIVE_RETENTION_DAYS") - 1) * 1440
    if reach > kept:
        raise ConfigError(
            f"setting API_LOOKBACK_WINDOWS reaches {reach} minutes back, past the "
            f"{kept} the archive keeps (ARCHIVE_RETENTION_DAYS less a day)",
            "look back fewer windows, or keep more days",
        )
