"""The HTTP API: /metrics, /health, /ready."""
