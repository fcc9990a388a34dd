"""Retention on every backend: apply the policy, report drift, and delete only what is archived."""

from shipper.jobs.retention.report import Finding

__all__ = ["Finding"]
