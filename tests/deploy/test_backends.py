"""Elasticsearch ILM policy and index template, CloudWatch IAM policy."""

from __future__ import annotations

import json

from shipper.sinks.elasticsearch.template import ilm_policy, index_template
from tests.deploy.conftest import DEPLOY

ES = DEPLOY / "elasticsearch"


def test_ilm_policy_deletes_at_30_days() -> None:
    policy = json.loads((ES / "ilm-policy.json").read_text())
    assert policy == ilm_policy(30)
    assert policy["policy"]["phases"]["delete"] == {"min_age": "30d", "actions": {"delete": {}}}


def test_index_template_maps_our_schema() -> None:
    template = json.loads((ES / "index-template.json").read_text())
    # The same body the sink and the retention job install (no drift between them).
    assert template == index_template("ecvi-logs-*", ilm_policy="ecvi-logs-30d")
    assert template["index_patterns"] == ["ecvi-logs-*"]
    assert template["template"]["settings"]["index.lifecycle.name"] == "ecvi-logs-30d"
    props = template["template"]["mappings"]["properties"]
    assert props["timestamp"]["type"] == "date" and props["@timestamp"]["type"] == "date"
    for key in ("request_id", "user_id", "company_id", "task_id", "trace_id", "span_id"):
        assert props[key]["type"] == "keyword", key
    assert props["message"]["type"] == "text"
    assert props["exception"]["properties"]["stacktrace"]["type"] == "text"


def test_iam_policy_grants_exactly_what_ecvi_logs_uses() -> None:
    policy = json.loads((DEPLOY / "cloudwatch" / "iam-policy.json").read_text())
    assert policy["Version"] == "2012-10-17"
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {
        "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogGroups",
        "logs:DescribeLogStreams", "logs:PutRetentionPolicy", "logs:FilterLogEvents", "logs:GetLogEvents",
        "s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:PutObjectRetention",
        "s3:PutLifecycleConfiguration", "s3:GetLifecycleConfiguration",
    }
    assert all(s["Effect"] == "Allow" and "*" not in s["Action"] for s in policy["Statement"])
    assert not any(a.split(":")[1].startswith("Delete") for a in actions)
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids))
