import pytest
from pydantic import ValidationError

from shipper.sinks.s3.config import S3SinkConfig

from ._support import make_config


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_NAME", "ip-10-0-0-1.ec2.internal")
    cfg = S3SinkConfig.model_validate({"type": "s3", "inputs": ["app"], "url": "s3://archive/ingest"})
    assert cfg.node == "ip-10-0-0-1.ec2.internal"
    assert cfg.batch.max_bytes == 32 * 1024 * 1024 and cfg.batch.timeout_secs == 60
    assert cfg.object_lock is None


def test_node_without_env_is_the_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    monkeypatch.setattr("socket.gethostname", lambda: "worker/7")
    cfg = S3SinkConfig.model_validate({"type": "s3", "inputs": ["app"], "url": "file:///tmp/a"})
    assert cfg.node == "worker_7"


@pytest.mark.parametrize(("kw", "message"), [
    ({"url": "https://bucket/x"}, "s3://bucket/prefix or file:///dir"),
    ({"object_lock": "compliance"}, "object_lock and lock_days go together"),
    ({"url": "file:///tmp/x", "object_lock": "governance", "lock_days": 3}, "needs an s3:// url"),
    ({"node": "///"}, "node must hold"),
    ({"compression_level": 0}, "compression_level"),
])
def test_invalid(kw, message) -> None:
    with pytest.raises(ValidationError, match=message):
        make_config(**{"url": "s3://b/p", **kw})
