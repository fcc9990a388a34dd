"""Shared test configuration: the real-service fixtures live in tests/services/fixtures.py."""

pytest_plugins = ["tests.services.fixtures"]
