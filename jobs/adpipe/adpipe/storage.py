"""S3 access for the jobs: one client with the job's own identity, keys under the ``ad-data``
bucket (their layout in `adpipe.windows`). Each call has a bounded connect and read timeout
and a bounded number of retries."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import IO, Any

import boto3
import botocore.exceptions
from botocore.config import Config

from adpipe.errors import ConfigError, UpstreamError
from adpipe.settings import Settings

NO_SUCH_KEY = ("NoSuchKey", "404")
PRECONDITION_FAILED = ("PreconditionFailed", "412")


class Bucket:
    """The ``ad-data`` bucket, with the few operations the jobs use."""

    def __init__(self, settings: Settings) -> None:
        self.name = settings.s3_bucket
        if bool(settings.aws_access_key_id) != bool(settings.aws_secret_access_key):
            raise ConfigError(
                "an S3 access key is set without its secret, or a secret without its key",
                "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the job's own pair)",
            )
        self.ca_bundle = settings.s3_ca_bundle
        if self.ca_bundle and not os.access(self.ca_bundle, os.R_OK):
            raise ConfigError(
                f"S3_CA_BUNDLE names {self.ca_bundle}, which is not a file this job can read",
                "mount the CA into the container there (docker run -v "
                f".state/tls/ca.crt:{self.ca_bundle}:ro; `make certs` writes it), or unset it",
            )
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            verify=self.ca_bundle,  # None: the system's CAs
            region_name=settings.aws_region,
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=settings.aws_secret_access_key,
            config=Config(
                retries={"max_attempts": 6, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
                s3={"addressing_style": "path"},
            ),
        )

    def _call(
        self, action: str, key: str, call: Callable[[], object], tolerated: tuple[str, ...] = ()
    ) -> bool:
        """Run ``call``; False when S3 answers with a ``tolerated`` error code, any other S3
        error becomes one `UpstreamError` naming the action and the key."""
        try:
            call()
            return True
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in tolerated:
                return False
            raise self._fail(action, key, exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._fail(action, key, exc) from exc

    def _fail(self, action: str, key: str, exc: Exception) -> UpstreamError:
        if isinstance(exc, botocore.exceptions.SSLError):  # a certificate that does not verify
            trusted = f"S3_CA_BUNDLE ({self.ca_bundle})" if self.ca_bundle else "the system's CAs"
            return UpstreamError(
                f"S3 {action} s3://{self.name}/{key} failed: the S3 endpoint's certificate "
                f"does not verify against {trusted}: {exc}",
                "give the job the CA that signed the endpoint's certificate as S3_CA_BUNDLE (the "
                "local stack: `make start TLS=1` makes both; docker run -v "
                ".state/tls/ca.crt:/etc/adpipe/tls/ca.crt:ro), then rerun",
            )
        return UpstreamError(
            f"S3 {action} s3://{self.name}/{key} failed: {exc}",
            "check that the S3 endpoint (S3_ENDPOINT_URL) is up, then rerun",
        )

    def put(
        self,
        key: str,
        body: bytes | IO[bytes],
        content_type: str = "application/octet-stream",
        **extra: Any,
    ) -> None:
        self._call(
            "PUT",
            key,
            lambda: self._client.put_object(
                Bucket=self.name, Key=key, Body=body, ContentType=content_type, **extra
            ),
        )

    def put_new(self, key: str, body: bytes | IO[bytes], content_type: str, **extra: Any) -> bool:
        """Put only if no object has the key (If-None-Match); False when one already does.
        Never replaces an object: what backups and archive objects are written with."""
        return self._call(
            "PUT",
            key,
            lambda: self._client.put_object(
                Bucket=self.name,
                Key=key,
                Body=body,
                ContentType=content_type,
                IfNoneMatch="*",
                **extra,
            ),
            tolerated=PRECONDITION_FAILED,
        )

    def stored_sha256(self, key: str) -> str | None:
        """The SHA-256 (hex) S3 checked when the object was put with one and keeps with it;
        None when it keeps none (put without, or a server that does not)."""
        found: dict[str, Any] = {}

        def head() -> None:
            found.update(
                self._client.head_object(Bucket=self.name, Key=key, ChecksumMode="ENABLED")
            )

        self._call("HEAD", key, head)
        stored = found.get("ChecksumSHA256")
        if not stored or "-" in stored:  # a multipart object's checksum of checksums
            return None
        return base64.b64decode(stored).hex()

    def download(self, key: str, handle: IO[bytes]) -> bool:
        """Stream the object into ``handle``; False when there is no such key."""

        def stream() -> None:
            body = self._client.get_object(Bucket=self.name, Key=key)["Body"]
            for chunk in body.iter_chunks(1 << 20):
                handle.write(chunk)

        return self._call("GET", key, stream, tolerated=NO_SUCH_KEY)

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such key."""
        buffer = io.BytesIO()
        return buffer.getvalue() if self.download(key, buffer) else None

    def keys(self, prefix: str) -> Iterator[str]:
        for item in self._listed(prefix):
            yield item["Key"]

    def written_at(self, prefix: str) -> dict[str, datetime]:
        """When each object under ``prefix`` was last written (LastModified), by key."""
        return {item["Key"]: item["LastModified"] for item in self._listed(prefix)}

    def sizes(self, prefix: str) -> Iterator[int]:
        """The size in bytes of each object under ``prefix``."""
        for item in self._listed(prefix):
            yield int(item["Size"])

    def sizes_and_times(self, prefix: str) -> Iterator[tuple[int, datetime]]:
        """The size in bytes and the last write (LastModified) of each object under ``prefix``."""
        for item in self._listed(prefix):
            yield int(item["Size"]), item["LastModified"]

    def _listed(self, prefix: str) -> Iterator[dict[str, Any]]:
        try:  # a generator: errors surface while it is iterated, so not through _call
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.name, Prefix=prefix
            )
            for page in pages:
                yield from page.get("Contents", [])
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._fail("LIST", prefix, exc) from exc

    def delete(self, keys: list[str]) -> None:
        """Delete the keys; `UpstreamError` naming the first key S3 refused, whether it
        refused the request or (HTTP 200) some of its keys."""
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            objects = {"Objects": [{"Key": k} for k in chunk], "Quiet": True}
            answer: dict[str, Any] = {}

            def send(objects: dict[str, Any] = objects, answer: dict[str, Any] = answer) -> None:
                answer.update(self._client.delete_objects(Bucket=self.name, Delete=objects))

            self._call("DELETE", chunk[0], send)
            refused = answer.get("Errors") or []
            if refused:
                first = refused[0]
                raise UpstreamError(
                    f"S3 refused to delete {len(refused)} of {len(chunk)} keys (first: "
                    f"s3://{self.name}/{first.get('Key')}: {first.get('Code')} "
                    f"{first.get('Message', '')})",
                    "check the identity's rights, then rerun",
                )

    def check(self) -> None:
        """Raise `UpstreamError` unless the bucket answers this identity (a one-key listing:
        every job may list, none may HEAD the bucket)."""
        self._call("LIST", "", lambda: self._client.list_objects_v2(Bucket=self.name, MaxKeys=1))
