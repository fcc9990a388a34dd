"""The ``file`` sink: NDJSON on local disk."""
