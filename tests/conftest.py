"""Shared test configuration: the real-service fixtures live in tests/services/fixtures.py."""

import pytest

pytest_plugins = ["tests.services.fixtures"]


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio, the loop the shipper runs on."""
    return "asyncio"
