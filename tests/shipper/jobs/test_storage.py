import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from shipper.archive.storage.base import LockSettings
from shipper.archive.storage.local import LocalStore
from shipper.archive.storage.s3 import LIFECYCLE_RULE_ID, S3Store, lifecycle_rule
from shipper.archive.storage.url import open_store, parse_store_url
from shipper.errors import ObjectMissing, StorageError


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_parse_urls() -> None:
    assert parse_store_url("s3://bucket/a/b/") == ("s3", "bucket", "a/b")
    assert parse_store_url("s3://bucket") == ("s3", "bucket", "")
    assert parse_store_url("file:///var/archive") == ("file", "", "/var/archive")
    for bad in ("s3:///x", "http://x/y", "/var/archive", "file://host/dir"):
        with pytest.raises(ValueError):
            parse_store_url(bad)


def test_local_store_round_trip(tmp_path) -> None:
    store = open_store(tmp_path.as_uri())
    assert isinstance(store, LocalStore)
    store.put("date=2025-01-15/u/part-00000.ndjson.gz", b"abc", _sha(b"abc"))
    store.put("date=2025-01-15/manifest.json", b"{}", _sha(b"{}"))
    store.put("date=2025-01-16/manifest.json", b"{}", _sha(b"{}"))
    assert store.get("date=2025-01-15/u/part-00000.ndjson.gz") == b"abc"
    info = store.stat("date=2025-01-15/u/part-00000.ndjson.gz")
    assert info is not None and (info.size, info.sha256) == (3, _sha(b"abc"))
    assert store.stat("nope") is None
    assert [o.key for o in store.list("date=2025-01-15/")] == [
        "date=2025-01-15/manifest.json", "date=2025-01-15/u/part-00000.ndjson.gz"]
    assert len(store.list("date=2025-01-1")) == 3
    store.delete("date=2025-01-16/manifest.json")
    store.delete("date=2025-01-16/manifest.json")
    with pytest.raises(ObjectMissing):
        store.get("date=2025-01-16/manifest.json")
    assert store.describe("k").endswith("/k") and store.describe("k").startswith("file://")


def test_local_store_refuses_bad_checksums_and_keys(tmp_path) -> None:
    store = LocalStore(tmp_path)
    with pytest.raises(StorageError, match="does not match"):
        store.put("a", b"abc", _sha(b"abd"))
    with pytest.raises(StorageError, match="invalid object key"):
        store.put("../a", b"abc", _sha(b"abc"))
    assert store.list() == []


def test_object_lock_parameters() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert LockSettings("compliance", 400).put_params(now) == {
        "ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": now + timedelta(days=400)}
    assert LockSettings("governance", 1).put_params(now)["ObjectLockMode"] == "GOVERNANCE"
    with pytest.raises(ValueError):
        LockSettings("legal", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LockSettings("compliance", 0)
    with pytest.raises(ValueError, match="s3://"):
        open_store("file:///tmp/x", lock=LockSettings("compliance", 1))


def test_lifecycle_rule() -> None:
    rule = lifecycle_rule("archive/loki/", 365)
    assert rule["ID"] == LIFECYCLE_RULE_ID
    assert rule["Filter"] == {"Prefix": "archive/loki/"}
    assert rule["Expiration"] == {"Days": 365}
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert lifecycle_rule("", 30)["Filter"] == {"Prefix": ""}


def _s3() -> Any:
    return boto3.client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_s3_put_sends_sha256_and_object_lock() -> None:
    client = _s3()
    store = S3Store("bucket", "logs/", client, lock=LockSettings("compliance", 7))
    data = b"payload"
    with Stubber(client) as stub:
        stub.add_response("put_object", {}, {
            "Bucket": "bucket", "Key": "logs/date=2025-01-15/x.ndjson.gz", "Body": data,
            "ChecksumAlgorithm": "SHA256", "ChecksumSHA256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
            "ContentType": "application/gzip", "ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": ANY,
        })
        store.put("date=2025-01-15/x.ndjson.gz", data, _sha(data))
        stub.assert_no_pending_responses()


def test_s3_errors_are_classified() -> None:
    client = _s3()
    store = S3Store("bucket", "", client)
    with Stubber(client) as stub:
        stub.add_client_error("head_object", "404", http_status_code=404)
        stub.add_client_error("get_object", "NoSuchKey", http_status_code=404)
        stub.add_client_error("put_object", "SlowDown", http_status_code=503)
        stub.add_client_error("put_object", "AccessDenied", http_status_code=403)
        assert store.stat("k") is None
        with pytest.raises(ObjectMissing):
            store.get("k")
        with pytest.raises(StorageError) as slow:
            store.put("k", b"x", _sha(b"x"))
        assert slow.value.transient
        with pytest.raises(StorageError) as denied:
            store.put("k", b"x", _sha(b"x"))
        assert not denied.value.transient and "AccessDenied" in str(denied.value)


def test_s3_stat_reads_the_stored_checksum() -> None:
    client = _s3()
    store = S3Store("bucket", "p", client)
    digest = hashlib.sha256(b"abc").digest()
    with Stubber(client) as stub:
        stub.add_response("head_object", {"ContentLength": 3, "ChecksumSHA256": base64.b64encode(digest).decode()},
                          {"Bucket": "bucket", "Key": "p/k", "ChecksumMode": "ENABLED"})
        stub.add_response("head_object", {"ContentLength": 3, "ChecksumSHA256": "abc=-2"},
                          {"Bucket": "bucket", "Key": "p/k", "ChecksumMode": "ENABLED"})
        info = store.stat("k")
        assert info is not None and info.sha256 == digest.hex()
        multipart = store.stat("k")
        assert multipart is not None and multipart.sha256 is None
