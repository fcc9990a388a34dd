"""Machinery every sink shares: config, batching, retries, error classification, dead letters."""
