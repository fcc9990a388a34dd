"""ecvi-logs shipper: tails container logs and the Fluent forward protocol, ships at least once."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ecvi-logs")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
