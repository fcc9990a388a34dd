"""Sinks: where events leave the shipper (Loki, Elasticsearch, CloudWatch Logs, files)."""
