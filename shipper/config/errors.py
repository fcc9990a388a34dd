"""Config errors (defined with the rest of the hierarchy in :mod:`shipper.errors`)."""

from shipper.errors import ConfigError, ShipperError

__all__ = ["ConfigError", "ShipperError"]
