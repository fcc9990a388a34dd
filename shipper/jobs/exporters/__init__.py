"""Exporters: read one UTC day out of a backend as archived lines, unit by unit (stream, index, group)."""

from shipper.jobs.exporters.base import Exporter, Unit

__all__ = ["Exporter", "Unit"]
