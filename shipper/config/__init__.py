"""The shipper's YAML configuration: models, loading with ``${ENV}`` interpolation, validation."""

from shipper.config.load import load_config, parse_config
from shipper.config.model import ShipperConfig
from shipper.errors import ConfigError

__all__ = ["ConfigError", "ShipperConfig", "load_config", "parse_config"]
