"""Fixtures of the CloudWatch sink tests: a boto3 client under botocore's Stubber."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from tests.shipper.sinks.cloudwatch._support import offline_client


@pytest.fixture
def logs_client() -> Any:
    return offline_client()


@pytest.fixture
def stub(logs_client: Any) -> Iterator[Stubber]:
    """Scripted AWS answers, in order; the test fails if a scripted call was not made."""
    with Stubber(logs_client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()
