"""Amazon S3 (or a compatible store) as an archive: SHA-256 checksums, Object Lock, lifecycle expiry.

Every ``PutObject`` carries ``ChecksumAlgorithm=SHA256`` and the ``ChecksumSHA256`` computed here,
so S3 refuses bytes damaged on the way and keeps the checksum with the object (``HeadObject``
returns it, which lets a quick check compare it with the manifest without downloading).
"""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shipper.archive.storage.base import LockSettings, ObjectInfo, ObjectStore
from shipper.errors import ObjectMissing, StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: The lifecycle rule ``archive lifecycle`` owns (other rules of the bucket are kept).
LIFECYCLE_RULE_ID = "ecvi-logs-archive-expiry"

_TRANSIENT_CODES = frozenset({
    "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed",
    "Throttling", "ThrottlingException", "ExpiredToken", "OperationAborted",
})


def build_s3_client(*, region: str | None = None, endpoint: str | None = None,
                    profile: str | None = None) -> S3Client:
    """An S3 client from the standard credential chain; path-style addressing for custom endpoints."""
    session = boto3.session.Session(profile_name=profile, region_name=region)
    custom = endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        s3={"addressing_style": "path"} if custom else {},
        user_agent_extra="ecvi-logs",
    )
    return session.client("s3", endpoint_url=endpoint, config=config)


def b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def hex_to_b64(value: str) -> str:
    return base64.b64encode(bytes.fromhex(value)).decode()


def storage_error(exc: Exception, what: str) -> StorageError:
    """A :class:`StorageError` for a botocore failure, transient for throttling, 5xx and the network."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = f"{what}: {code or status}: {err.get('Message', '')}".rstrip(": ")
        if code in ("NoSuchKey", "404") or (status == 404 and code not in ("NoSuchBucket",)):
            return ObjectMissing(message)
        return StorageError(message, transient=code in _TRANSIENT_CODES or status >= 500 or status == 429)
    return StorageError(f"{what}: {type(exc).__name__}: {exc}", transient=True)


def lifecycle_rule(prefix: str, expire_days: int, *, noncurrent_days: int | None = None) -> dict[str, Any]:
    """The rule that expires archive objects ``expire_days`` after creation.

    Versioned buckets (Object Lock implies versioning) keep an expired object as a noncurrent
    version: those are removed ``noncurrent_days`` later (default: 1). Locked versions outlive any
    rule until their retain-until date.
    """
    if expire_days < 1:
        raise ValueError("expire_days must be at least 1")
    return {
        "ID": LIFECYCLE_RULE_ID,
        "Filter": {"Prefix": prefix.strip("/") + "/" if prefix.strip("/") else ""},
        "Status": "Enabled",
        "Expiration": {"Days": expire_days},
        "NoncurrentVersionExpiration": {"NoncurrentDays": noncurrent_days or 1},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
    }


class S3Store(ObjectStore):
    """Objects under ``s3://bucket/prefix``."""

    def __init__(self, bucket: str, prefix: str, client: S3Client, *, lock: LockSettings | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.lock = lock
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes, sha256: str) -> None:
        params: dict[str, Any] = {
            "Bucket": self.bucket, "Key": self._key(key), "Body": data,
            "ChecksumAlgorithm": "SHA256", "ChecksumSHA256": hex_to_b64(sha256),
            "ContentType": "application/json" if key.endswith(".json") else "application/gzip",
        }
        if self.lock is not None:
            params.update(self.lock.put_params(datetime.now(UTC)))
        try:
            self.client.put_object(**params)
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, f"cannot write {self.describe(key)}") from exc

    def get(self, key: str) -> bytes:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return resp["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, f"cannot read {self.describe(key)}") from exc

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED")
        except (ClientError, BotoCoreError) as exc:
            err = storage_error(exc, f"cannot stat {self.describe(key)}")
            if isinstance(err, ObjectMissing):
                return None
            raise err from exc
        checksum = head.get("ChecksumSHA256")
        # A multipart checksum ("...-3") is over the parts, not the object: unknown here.
        sha = b64_to_hex(checksum) if checksum and "-" not in checksum else None
        return ObjectInfo(key, int(head["ContentLength"]), sha)

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        out: list[ObjectInfo] = []
        full = self._key(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        cut = len(self.prefix) + 1 if self.prefix else 0
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                for obj in page.get("Contents", []):
                    out.append(ObjectInfo(obj["Key"][cut:], int(obj["Size"])))
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, f"cannot list {self.describe(prefix)}") from exc
        return sorted(out, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, f"cannot delete {self.describe(key)}") from exc

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, f"bucket {self.bucket} is not usable") from exc

    def set_expiry(self, expire_days: int) -> dict[str, Any]:
        """Install (or replace) the archive's expiry rule; other rules of the bucket are kept."""
        rule = lifecycle_rule(self.prefix, expire_days)
        try:
            try:
                rules = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket).get("Rules", [])
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                    raise
                rules = []
            kept = [r for r in rules if r.get("ID") != LIFECYCLE_RULE_ID]
            self.client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration=cast(Any, {"Rules": [*kept, rule]}))
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, f"cannot set the lifecycle of bucket {self.bucket}") from exc
        return rule

    def close(self) -> None:
        self.client.close()
