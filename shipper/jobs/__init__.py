"""Operator jobs: retention on every backend, and day archives (export, seal, verify, restore).

An archive holds, per UTC day, gzip NDJSON objects and a ``manifest.json`` written last that lists
every object with its event count, size, SHA-256 and time range. Two routes fill it: ``archive run``
exports a day from a backend; the ``s3`` sink writes objects at ingest and ``archive seal`` writes
the manifest over them. Verify, restore and retention work on a day from either route. The format,
layout and object stores are :mod:`shipper.archive`, shared with the ``s3`` sink.
"""
