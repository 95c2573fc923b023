"""Settings from the environment: the names of .env.example, the same in every job."""

from __future__ import annotations

import os

from adpipe.job import ConfigError


def _get(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise ConfigError(
            f"setting {name} is missing",
            "set it in the environment (see .env.example; docker run --env-file .env)",
        )
    return value


def _number(name: str, default: str, kind: type[int] | type[float]) -> int | float:
    text = _get(name, default)
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"setting {name} is not a number: {text!r}") from None


class Settings:
    """Every setting a job reads. Required ones raise `ConfigError` when read and unset."""

    @property
    def warehouse_dsn(self) -> str:
        return _get("WAREHOUSE_DSN")

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
    def page_size(self) -> int:
        size = int(_number("EXTRACT_PAGE_SIZE", "1000", int))
        if not 1 <= size <= 10_000:
            raise ConfigError(f"EXTRACT_PAGE_SIZE must be between 1 and 10000, not {size}")
        return size

    @property
    def max_rejected_share(self) -> float:
        share = float(_number("LOAD_MAX_REJECTED_SHARE", "0.01", float))
        if not 0 <= share <= 1:
            raise ConfigError(f"LOAD_MAX_REJECTED_SHARE must be between 0 and 1, not {share}")
        return share

    @property
    def retention_days(self) -> int:
        days = int(_number("ARCHIVE_RETENTION_DAYS", "30", int))
        if days < 1:
            raise ConfigError(f"ARCHIVE_RETENTION_DAYS must be at least 1, not {days}")
        return days
