"""Elasticsearch retention against recorded answers: with ILM, without ILM, and enforce."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import orjson

from shipper.archive.storage.local import LocalStore
from shipper.jobs.archive import archive_day
from shipper.jobs.http import JobHttp
from shipper.jobs.retention import elasticsearch as es
from shipper.sinks.elasticsearch.template import ilm_policy, index_template

from ._support import DAY, ScriptedExporter, sample_units

TARGET = es.EsRetentionTarget(index="ecvi-logs-%Y.%m.%d", pattern="ecvi-logs-*", template_name="ecvi-logs")
NOW = datetime(2025, 2, 20, tzinfo=UTC)

# Recorded from the Elasticsearch 8.19 reference (GET/PUT _ilm/policy) and the integ-test distribution.
ILM_GET_200 = {"ecvi-logs-30d": {
    "version": 1, "modified_date": "2025-01-01T00:00:00.000Z",
    "policy": ilm_policy(30)["policy"],
    "in_use_by": {"indices": [], "data_streams": [], "composable_templates": ["ecvi-logs"]}}}
ILM_MISSING_404 = {"error": {"root_cause": [{"type": "resource_not_found_exception",
                                             "reason": "Lifecycle policy not found: ecvi-logs-30d"}],
                             "type": "resource_not_found_exception",
                             "reason": "Lifecycle policy not found: ecvi-logs-30d"}, "status": 404}
NO_ILM_400 = {"error": "no handler found for uri [/_ilm/policy/ecvi-logs-30d] and method [GET]"}
ACK = {"acknowledged": True}


class FakeCluster:
    def __init__(self, *, ilm: str, template: dict[str, Any] | None = None,
                 indices: dict[str, int] | None = None, lifecycle: dict[str, str | None] | None = None) -> None:
        self.ilm = ilm  # "present", "missing", "unavailable"
        self.template = template
        self.indices = dict(indices or {})
        self.lifecycle = dict(lifecycle or {})
        self.requests: list[tuple[str, str, Any]] = []
        self.policy: dict[str, Any] | None = None  # the body PUT last; None: the recorded 30-day one

    def handler(self, request: httpx.Request) -> httpx.Response:
        body: Any = orjson.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, body))
        path, method = request.url.path, request.method
        if path.startswith("/_ilm/policy/"):
            if self.ilm == "unavailable":
                return httpx.Response(400, json={"error": f"no handler found for uri [{path}] and method [{method}]"})
            if method == "PUT":
                self.ilm, self.policy = "present", body
                return httpx.Response(200, json=ACK)
            if self.ilm != "present":
                return httpx.Response(404, json=ILM_MISSING_404)
            if self.policy is None:
                return httpx.Response(200, json=ILM_GET_200)
            name = path.rsplit("/", 1)[1]
            return httpx.Response(200, json={name: {"version": 2, "policy": self.policy["policy"]}})
        if path.startswith("/_index_template/"):
            if method == "PUT":
                self.template = body
                return httpx.Response(200, json=ACK)
            if self.template is None:
                return httpx.Response(404, json={"error": {"type": "resource_not_found_exception"}, "status": 404})
            found = [{"name": "ecvi-logs", "index_template": self.template}]
            return httpx.Response(200, json={"index_templates": found})
        if path == "/ecvi-logs-*/_settings/index.lifecycle.name":
            return httpx.Response(200, json={name: {"settings": {"index": {"lifecycle": {"name": p}}}} if p else
                                             {"settings": {}} for name, p in self.lifecycle.items()})
        if path.endswith("/_settings") and method == "PUT":
            for name in path.strip("/").split("/")[0].split(","):
                self.lifecycle[name] = body["index"]["lifecycle"]["name"]
            return httpx.Response(200, json=ACK)
        if path == "/_cat/indices/ecvi-logs-*":
            return httpx.Response(200, json=[{"index": k, "docs.count": str(v)} for k, v in self.indices.items()])
        if method == "DELETE":
            self.indices.pop(path.strip("/"), None)
            return httpx.Response(200, json=ACK)
        return httpx.Response(404, json={"error": "unexpected " + path})

    def http(self) -> JobHttp:
        return JobHttp("http://es.test", what="Elasticsearch", transport=httpx.MockTransport(self.handler))


def test_ilm_state_from_recorded_answers() -> None:
    assert es.ilm_state(httpx.Response(200, json=ILM_GET_200)) == "present"
    assert es.ilm_state(httpx.Response(404, json=ILM_MISSING_404)) == "missing"
    assert es.ilm_state(httpx.Response(400, json=NO_ILM_400)) == "unavailable"
    assert es.ilm_state(httpx.Response(405, json={"error": "Incorrect HTTP method"})) == "unavailable"


def test_apply_with_ilm_installs_policy_template_and_attaches_existing_indices() -> None:
    cluster = FakeCluster(ilm="missing", lifecycle={"ecvi-logs-2025.02.01": None, "ecvi-logs-2025.02.02": "other"})
    findings = es.apply(cluster.http(), TARGET, 30)
    puts = {path: body for method, path, body in cluster.requests if method == "PUT"}
    assert puts["/_ilm/policy/ecvi-logs-30d"] == ilm_policy(30)
    assert puts["/_ilm/policy/ecvi-logs-30d"]["policy"]["phases"]["delete"] == {
        "min_age": "30d", "actions": {"delete": {}}}
    template = puts["/_index_template/ecvi-logs"]
    # The same body as deploy/elasticsearch/index-template.json (tests/deploy keeps that file so).
    assert template == index_template("ecvi-logs-*", priority=200, ilm_policy="ecvi-logs-30d")
    assert template["template"]["settings"]["index.lifecycle.name"] == "ecvi-logs-30d"
    assert cluster.lifecycle == {"ecvi-logs-2025.02.01": "ecvi-logs-30d",
                                 "ecvi-logs-2025.02.02": "ecvi-logs-30d"}
    assert [f.action for f in findings] == ["installed", "installed", "attached to 2 indices"]
    again = es.apply(cluster.http(), TARGET, 30)
    assert [f.action for f in again] == ["unchanged", "unchanged"]
    assert all(f.ok for f in es.check(cluster.http(), TARGET, 30, now=NOW))


def test_check_reports_a_different_delete_age() -> None:
    cluster = FakeCluster(ilm="present", template=index_template("ecvi-logs-*", ilm_policy="ecvi-logs-30d"))
    drift = [f for f in es.check(cluster.http(), TARGET, 14, now=NOW) if not f.ok]
    # 14 days means the policy ecvi-logs-14d, and a template that points at it.
    assert [(f.setting, f.expected) for f in drift] == [("ilm delete min_age", "14d"), ("index template", ANY)]
    assert drift[1].actual == index_template("ecvi-logs-*", ilm_policy="ecvi-logs-30d")["_meta"]["hash"]


def test_without_ilm_the_template_goes_in_without_a_policy() -> None:
    cluster = FakeCluster(ilm="unavailable", indices={"ecvi-logs-2025.01.01": 5, "ecvi-logs-2025.02.19": 9})
    findings = es.apply(cluster.http(), TARGET, 30)
    assert findings[0].setting == "ilm" and "enforce" in findings[0].note
    assert cluster.template == index_template("ecvi-logs-*", priority=200)
    assert "index.lifecycle.name" not in cluster.template["template"]["settings"]
    drift = [f for f in es.check(cluster.http(), TARGET, 30, now=NOW) if not f.ok]
    assert [(f.target, f.setting) for f in drift] == [("ecvi-logs-2025.01.01", "age")]


def test_enforce_deletes_only_verified_archived_days(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    units = {"index=ecvi-logs-2025.01.15": sample_units(1, 40)["stream=0000000000000000"]}
    archive_day(ScriptedExporter(units, backend="elasticsearch"), store, DAY, now=NOW)
    cluster = FakeCluster(ilm="unavailable", indices={
        "ecvi-logs-2025.01.14": 10,   # old, never archived: kept
        "ecvi-logs-2025.01.15": 40,   # old, archived and verified: deleted
        "ecvi-logs-2025.02.19": 99,   # recent: not touched
    })
    dry = es.enforce(cluster.http(), TARGET, 30, store, now=NOW, dry_run=True)
    assert [(f.target, f.action) for f in dry] == [("ecvi-logs-2025.01.14", "kept"),
                                                   ("ecvi-logs-2025.01.15", "would delete")]
    assert len(cluster.indices) == 3
    findings = es.enforce(cluster.http(), TARGET, 30, store, now=NOW)
    assert [(f.target, f.action, f.ok) for f in findings] == [("ecvi-logs-2025.01.14", "kept", False),
                                                              ("ecvi-logs-2025.01.15", "deleted", True)]
    assert "manifest.json: missing" in findings[0].note
    assert sorted(cluster.indices) == ["ecvi-logs-2025.01.14", "ecvi-logs-2025.02.19"]


def test_enforce_keeps_an_index_the_archive_does_not_cover(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    units = {"index=ecvi-logs-2025.01.15": sample_units(1, 40)["stream=0000000000000000"]}
    archive_day(ScriptedExporter(units, backend="elasticsearch"), store, DAY, now=NOW)
    cluster = FakeCluster(ilm="unavailable", indices={"ecvi-logs-2025.01.15": 41})  # one more than archived
    (finding,) = es.enforce(cluster.http(), TARGET, 30, store, now=NOW)
    assert finding.action == "kept" and "holds 40 events of index=ecvi-logs-2025.01.15, the backend 41" in finding.note
    victim = store.list("date=2025-01-15/index=")[0].key
    (tmp_path / victim).write_bytes(b"tampered")
    cluster.indices["ecvi-logs-2025.01.15"] = 40
    (finding,) = es.enforce(cluster.http(), TARGET, 30, store, now=NOW)
    assert finding.action == "kept" and victim in finding.note
    assert "ecvi-logs-2025.01.15" in cluster.indices


def test_policy_names_follow_the_days() -> None:
    assert TARGET.policy_name(30) == "ecvi-logs-30d"
    assert TARGET.policy_name(90) == "ecvi-logs-90d"


def test_index_day_from_its_name() -> None:
    assert TARGET.day_of("ecvi-logs-2025.01.15") == DAY
    assert TARGET.day_of("ecvi-logs-restored") is None


def test_with_ilm_the_policy_is_a_backstop_and_enforce_deletes_what_is_archived(tmp_path: Path) -> None:
    """ILM deletes on age alone: its delete phase sits a margin past the retention, and enforce
    deletes at the retention only what the archive verifiably holds."""
    cluster = FakeCluster(ilm="missing", indices={"ecvi-logs-2025.01.14": 10, "ecvi-logs-2025.01.15": 40})
    findings = es.apply(cluster.http(), TARGET, 30, margin_days=7)
    assert cluster.policy is not None
    assert cluster.policy["policy"]["phases"]["delete"] == {"min_age": "37d", "actions": {"delete": {}}}
    assert (findings[0].target, findings[0].expected) == ("ecvi-logs-30d", "37d")
    assert "retention enforce" in findings[0].note
    assert cluster.template is not None
    assert cluster.template["template"]["settings"]["index.lifecycle.name"] == "ecvi-logs-30d"
    checked = es.check(cluster.http(), TARGET, 30, now=NOW, margin_days=7)
    assert [f.ok for f in checked if f.setting in ("ilm delete min_age", "index template")] == [True, True]
    assert not next(f for f in es.check(cluster.http(), TARGET, 30, now=NOW) if f.setting == "ilm delete min_age").ok

    store = LocalStore(tmp_path)
    units = {"index=ecvi-logs-2025.01.15": sample_units(1, 40)["stream=0000000000000000"]}
    archive_day(ScriptedExporter(units, backend="elasticsearch"), store, DAY, now=NOW)
    done = es.enforce(cluster.http(), TARGET, 30, store, now=NOW)
    assert [(f.target, f.action) for f in done] == [("ecvi-logs-2025.01.14", "kept"),
                                                    ("ecvi-logs-2025.01.15", "deleted")]
    assert sorted(cluster.indices) == ["ecvi-logs-2025.01.14"]
