"""Loki's push messages built from a descriptor at import time, to decode what the encoder writes.

Written independently of the encoder from ``pkg/push/push.proto`` (package ``logproto``), so a
wrong field number or wire type on either side shows up as a failed round trip.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

_F = descriptor_pb2.FieldDescriptorProto


def _build() -> dict[str, Any]:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    f = descriptor_pb2.FileDescriptorProto(
        name="ecvi_test_push.proto", package="logproto", syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )

    def msg(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        m = f.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            fd = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                fd.type_name = type_name

    opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    msg("LabelPairAdapter", ("name", 1, _F.TYPE_STRING, opt, ""), ("value", 2, _F.TYPE_STRING, opt, ""))
    msg("EntryAdapter",
        ("timestamp", 1, _F.TYPE_MESSAGE, opt, ".google.protobuf.Timestamp"),
        ("line", 2, _F.TYPE_STRING, opt, ""),
        ("structuredMetadata", 3, _F.TYPE_MESSAGE, rep, ".logproto.LabelPairAdapter"))
    msg("StreamAdapter",
        ("labels", 1, _F.TYPE_STRING, opt, ""),
        ("entries", 2, _F.TYPE_MESSAGE, rep, ".logproto.EntryAdapter"),
        ("hash", 3, _F.TYPE_UINT64, opt, ""))
    msg("PushRequest",
        ("streams", 1, _F.TYPE_MESSAGE, rep, ".logproto.StreamAdapter"),
        ("format", 2, _F.TYPE_STRING, opt, ""))
    pool.Add(f)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"logproto.{name}"))
        for name in ("PushRequest", "StreamAdapter", "EntryAdapter", "LabelPairAdapter")
    }


_CLASSES = _build()
PushRequest = _CLASSES["PushRequest"]
StreamAdapter = _CLASSES["StreamAdapter"]
EntryAdapter = _CLASSES["EntryAdapter"]
LabelPairAdapter = _CLASSES["LabelPairAdapter"]


def decode(data: bytes) -> Any:
    """Parse an uncompressed ``PushRequest``."""
    req = PushRequest()
    req.ParseFromString(data)
    return req
