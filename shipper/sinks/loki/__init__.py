"""Grafana Loki sink: protobuf (or JSON) pushes with templated labels and structured metadata."""
