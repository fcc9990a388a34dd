"""The shipper's YAML configuration: models, loading with ``${ENV}`` interpolation, validation."""

from shipper.errors import ConfigError
from shipper.config.load import load_config, parse_config
from shipper.config.model import ShipperConfig

__all__ = ["ConfigError", "ShipperConfig", "load_config", "parse_config"]
