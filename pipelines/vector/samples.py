"""The sample record and the ``tests:`` entries Vector runs against the rendered parse and redact steps."""

from __future__ import annotations

import json
from typing import Any

from pipelines import vrl

SAMPLE_RECORD = {
    "timestamp": "2025-01-01T00:00:00.123Z",
    "level": "ERROR",
    "logger": "app.api.v1.companies",
    "message": "Verification failed",
    "request_id": "9f1c2d3e4b5a69788796a5b4c3d2e1f0",
    "user_id": "user-1",
    "company_id": "123e4567-e89b-12d3-a456-426614174000",
    "service": "ecvi-backend",
    "environment": "production",
    "password": "hunter2",
    "headers": {"Authorization": "Bearer abcdefgh12345678"},
}
SAMPLE_CONTAINER_FILE = "/var/log/containers/api-7d9f8_ecvi_api-" + "0123456789abcdef" * 4 + ".log"


def parse_test(transform: str, kind: str, fmt: str) -> dict[str, Any]:
    """A Vector unit test: ``transform`` turns the sample line, as ``kind`` reads it, into the record."""
    line = json.dumps(SAMPLE_RECORD)
    fields: dict[str, Any]
    conditions = [
        'assert_eq!(.level, "ERROR")',
        'assert_eq!(.request_id, "9f1c2d3e4b5a69788796a5b4c3d2e1f0")',
        'assert_eq!(.message, "Verification failed")',
        "assert!(is_timestamp(.timestamp))",
    ]
    if kind == "fluent":
        fields = {**SAMPLE_RECORD, "tag": "ecvi.backend"}
    elif kind == "kubernetes_logs":
        fields = {"message": line, "file": "/var/log/pods/ecvi_api-7d9f8_uid/api/0.log",
                  "kubernetes": {"pod_namespace": "ecvi", "pod_name": "api-7d9f8", "container_name": "api"}}
        conditions.append('assert_eq!(.kubernetes.namespace, "ecvi")')
    else:
        wrapped = {
            "cri": f"2025-01-01T00:00:01.000000000Z stdout F {line}",
            "docker": json.dumps({"log": line + "\n", "stream": "stdout", "time": "2025-01-01T00:00:01Z"}),
        }.get(fmt, line)
        fields = {"message": wrapped, "file": SAMPLE_CONTAINER_FILE, "offset": 4096}
        if fmt in ("cri", "docker"):
            conditions += ['assert_eq!(.kubernetes.namespace, "ecvi")', 'assert_eq!(.kubernetes.pod_name, "api-7d9f8")']
    return {
        "name": f"{transform} parses an ecvi-logs record",
        "inputs": [{"insert_at": transform, "type": "vrl", "source": ". = " + vrl.literal(fields)}],
        "outputs": [{"extract_from": transform, "conditions": [{"type": "vrl", "source": "\n".join(conditions)}]}],
    }


def redact_test(transform: str) -> dict[str, Any]:
    """A Vector unit test: ``transform`` redacts secret keys, bearer tokens and URL passwords."""
    return {
        "name": f"{transform} redacts secrets",
        "inputs": [{"insert_at": transform, "type": "vrl", "source": ". = " + vrl.literal({
            "message": "login", "password": "hunter2", "headers": {"Authorization": "Bearer abcdefgh12345678"},
            "note": "token in https://user:s3cret@example.com/x",
        })}],
        "outputs": [{"extract_from": transform, "conditions": [{"type": "vrl", "source": "\n".join([
            'assert_eq!(.password, "[REDACTED]")',
            'assert_eq!(.headers.Authorization, "[REDACTED]")',
            'assert!(!contains(string!(.note), "s3cret"))',
            'assert_eq!(.message, "login")',
        ])}]}],
    }


def grouped_test(transform: str) -> dict[str, Any]:
    """A Vector unit test: ``transform`` (after a multiline reduce) removes the grouping mark and puts the
    joined message, the first line's id and the source back in metadata."""
    message = "ERROR boom\nTraceback (most recent call last):\n  File \"x.py\", line 1\nValueError: bad"
    return {
        "name": f"{transform} restores a grouped event's metadata",
        "inputs": [{"insert_at": transform, "type": "vrl", "source": ". = " + vrl.literal({
            "message": message, "ecvi_multiline": {"file": SAMPLE_CONTAINER_FILE, "stream": "stderr", "id": "0f" * 16},
        })}],
        "outputs": [{"extract_from": transform, "conditions": [{"type": "vrl", "source": "\n".join([
            "assert!(!exists(.ecvi_multiline))",
            f"assert_eq!(.message, {vrl.string(message)})",
            f"assert_eq!(%ecvi_raw, {vrl.string(message)})",
            f"assert_eq!(%ecvi_id, {vrl.string('0f' * 16)})",
        ])}]}],
    }
