"""What can be wrong with forward input: one error type, and the reasons it is counted under."""

from __future__ import annotations

from shipper.errors import ShipperError

# Reasons: the ``reason`` label of ``ecvi_shipper_input_errors`` for this source.
INVALID_MSGPACK = "invalid_msgpack"
FRAME_TOO_LARGE = "frame_too_large"
TRUNCATED = "truncated"
BAD_SHAPE = "bad_shape"
UNKNOWN_COMPRESSION = "unknown_compression"
BAD_GZIP = "bad_gzip"
BAD_ENTRY = "bad_entry"
BAD_TIME = "bad_time"
BAD_RECORD = "bad_record"
AUTH_FAILED = "auth_failed"
OVERLOADED = "overloaded"

# Reasons a connection was refused or closed: ``ecvi_shipper_connections_refused``; AUTH_FAILED too.
HANDSHAKE_TIMEOUT = "handshake_timeout"
IDLE_TIMEOUT = "idle_timeout"
FRAME_TIMEOUT = "frame_timeout"
PEER_LIMIT = "peer_limit"
CONNECTION_LIMIT = "connection_limit"


class ForwardDecodeError(ShipperError, ValueError):
    """Input that is not a valid forward frame; ``reason`` is a short label for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
