"""The ``forward`` source: Fluentd forward protocol v1 over TCP (fluent-logger, Fluentd, Fluent Bit)."""

from shipper.sources.forward.config import ForwardSourceConfig
from shipper.sources.forward.errors import ForwardDecodeError
from shipper.sources.forward.protocol import ForwardMessage, FrameDecoder, decode_message
from shipper.sources.forward.server import ForwardSource

__all__ = [
    "ForwardDecodeError",
    "ForwardMessage",
    "ForwardSource",
    "ForwardSourceConfig",
    "FrameDecoder",
    "decode_message",
]
