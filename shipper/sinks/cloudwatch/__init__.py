"""CloudWatch Logs sink (PutLogEvents)."""
