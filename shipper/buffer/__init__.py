"""Durable per-sink buffers between the sources and a sink."""

from shipper.buffer.disk import Chunk, DiskBuffer

__all__ = ["Chunk", "DiskBuffer"]
