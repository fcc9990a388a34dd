"""Elasticsearch sink: bulk create with deterministic ids into daily indices or a data stream."""
