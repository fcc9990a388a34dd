"""Options of the forward source: defaults, address validation, unknown keys."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shipper.sources.forward.config import ForwardSourceConfig, parse_address


def test_defaults() -> None:
    cfg = ForwardSourceConfig(type="forward")
    assert cfg.address == "127.0.0.1:24224"
    assert cfg.shared_key is None
    assert cfg.self_hostname == "ecvi-logs"
    assert cfg.max_frame_bytes == 16 * 1024 * 1024
    assert cfg.max_connections == 1024


def test_every_option_is_documented() -> None:
    for name, info in ForwardSourceConfig.model_fields.items():
        assert name == "type" or info.description, name


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:24224", ("127.0.0.1", 24224)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:24224", ("::1", 24224)),
        ("[::]:1", ("::", 1)),
        ("fluentd.logging.svc:24224", ("fluentd.logging.svc", 24224)),
    ],
)
def test_valid_addresses(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected
    assert ForwardSourceConfig(type="forward", address=address).address == address


@pytest.mark.parametrize("address", ["24224", "host:", ":24224", "::1:24224", "host:65536", "h:p", "[::1]"])
def test_invalid_addresses(address: str) -> None:
    with pytest.raises(ValidationError) as err:
        ForwardSourceConfig(type="forward", address=address)
    assert err.value.errors()[0]["loc"] == ("address",)


def test_unknown_keys_and_bad_values_are_rejected() -> None:
    with pytest.raises(ValidationError):
        ForwardSourceConfig.model_validate({"type": "forward", "port": 24224})
    with pytest.raises(ValidationError):
        ForwardSourceConfig(type="forward", shared_key="")
    with pytest.raises(ValidationError):
        ForwardSourceConfig(type="forward", max_connections=0)
