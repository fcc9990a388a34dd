from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from shipper.jobs.retention import cloudwatch as cw


def _client() -> Any:
    return boto3.client("logs", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


GROUPS = {"logGroups": [
    {"logGroupName": "/ecvi/api", "retentionInDays": 30},
    {"logGroupName": "/ecvi/worker", "retentionInDays": 90},
    {"logGroupName": "/ecvi/web"},
]}


def test_check_reports_groups_with_another_value() -> None:
    client = _client()
    with Stubber(client) as stub:
        stub.add_response("describe_log_groups", GROUPS, {"logGroupNamePrefix": "/ecvi/"})
        findings = cw.check(client, "/ecvi/", 30)
    assert [(f.target, f.actual, f.ok) for f in findings] == [
        ("/ecvi/api", "30", True), ("/ecvi/worker", "90", False), ("/ecvi/web", "never expire", False)]


def test_apply_sets_only_what_differs() -> None:
    client = _client()
    with Stubber(client) as stub:
        stub.add_response("describe_log_groups", GROUPS, {"logGroupNamePrefix": "/ecvi/"})
        stub.add_response("put_retention_policy", {}, {"logGroupName": "/ecvi/worker", "retentionInDays": 30})
        stub.add_response("put_retention_policy", {}, {"logGroupName": "/ecvi/web", "retentionInDays": 30})
        findings = cw.apply(client, "/ecvi/", 30)
        stub.assert_no_pending_responses()
    assert [f.action for f in findings] == ["unchanged", "set", "set"]
    with pytest.raises(ValueError, match="does not accept a retention of 31 days"):
        cw.apply(client, "/ecvi/", 31)
