"""The ``s3`` sink: archive at ingest, as gzip NDJSON objects partitioned by day, hour and node."""
