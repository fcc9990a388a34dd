"""Poison lines from one pod: the deploy config shape as a real ``ecvi-logs ship`` process against the
real Loki, Elasticsearch and CloudWatch Logs (moto).

A ``sandbox`` pod writes hostile lines (out-of-range times, 300- and 1000-deep JSON, forged
``kubernetes`` objects naming ``payments``, 500 junk ``service`` values, invalid UTF-8, huge lines,
fields named like metadata) while pods in ``payments`` and ``default`` write ordinary records. No good
line may be lost in any backend; the good pods' Loki label sets, Elasticsearch documents and
CloudWatch streams must be exactly theirs; every poison line must be stored in a safe form or
dead-lettered with a reason; the shipper must still run and answer /ready 200.

The 500 junk services are what the label budget (500 values per label) must absorb, so the short
profile's few thousand good lines make the poison share about 12 %; the long profile's is about 1 %.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from shipper.sinks._common.dead_letter import dead_letter_path, read_dead_letters
from tests.reliability._harness import Shipper, Summary, free_port, scaled, wait_for
from tests.reliability._poison_lines import (
    BAD_UTF8,
    CRI_TIMES,
    FORGED_K8S,
    TIME_KEYS,
    TIME_VALUES,
    Bad,
    bad_payload,
    cri_line,
    cri_time,
    good_payload,
    marker_of,
)

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

GOOD_PER_POD = int(scaled(1_500, 20_000))
JUNK_SERVICES = 500
# (namespace, pod, container, services): the second service appears half way, after the junk.
GOOD_PODS = (
    ("payments", "payments-api-7f9c4", "api", ("payments-api", "payments-api")),
    ("payments", "payments-worker-6d2b8", "worker", ("payments-worker", "payments-ledger")),
    ("default", "web-5c4d7", "web", ("web", "web")),
)
EVIL = ("sandbox", "evil-8b7f1", "app")
SINKS = ("loki", "elasticsearch", "cloudwatch")


def _file(namespace: str, pod: str, container: str) -> str:
    return f"{pod}_{namespace}_{container}-{uuid.uuid5(uuid.NAMESPACE_DNS, pod).hex * 2}.log"


def poison_specs() -> list[Bad]:
    """The sandbox pod's lines: 500 junk services first (they reach the label budget first), then the rest."""
    specs = [Bad("service", (f"junk-{i}-{uuid.uuid4().hex[:6]}",)) for i in range(JUNK_SERVICES)]
    specs += [Bad("time", (TIME_KEYS[i % len(TIME_KEYS)], v), CRI_TIMES[i % len(CRI_TIMES)] if i % 4 == 0 else None)
              for i, v in enumerate(TIME_VALUES)]
    specs += [Bad("time", ("timestamp", '"not a time"'), t) for t in CRI_TIMES]
    specs += [Bad("deep", (depth, shape, key)) for depth in (300, 1000)
              for shape, key in (("dict", "d"), ("list", "d"), ("mixed", "request_id"), ("dict", "kubernetes"))]
    specs += [Bad("collide", ("kubernetes", v)) for v in (
        FORGED_K8S, {"namespace": "payments"}, {"namespace": "payments", "pod_name": "web-5c4d7"}, "payments",
        ["payments"], {"namespace": {"x": "payments"}})]
    specs += [Bad("collide", (k, v)) for k in ("@timestamp", "_id", "ts_ns", "_index") for v in ("payments", 1e300)]
    specs += [Bad("utf8", (junk, as_json)) for junk in BAD_UTF8 for as_json in (True, False)]
    specs += [Bad("huge", (n, fill, as_json)) for n, fill, as_json in (
        (300_000, "a", True), (2 * 1024 * 1024, "a", False), (600_000, "é", True), (400_000, "中", False))]
    return specs


@dataclass
class Workload:
    """Every generated line by marker: which pod wrote it and whether it is poison."""

    pod: dict[int, str] = field(default_factory=dict)
    namespace: dict[int, str] = field(default_factory=dict)
    service: dict[int, str] = field(default_factory=dict)
    level: dict[int, str] = field(default_factory=dict)
    poison: dict[int, str] = field(default_factory=dict)  # marker -> kind

    @property
    def good(self) -> list[int]:
        return [n for n in self.pod if n not in self.poison]


def write_workload(logs: Path) -> Workload:
    """Good pods' files and the sandbox pod's file, all written before the shipper starts (a backlog)."""
    w = Workload()
    now = time.time_ns()
    n = 0
    for namespace, pod, container, services in GOOD_PODS:
        lines = []
        for i in range(GOOD_PER_POD):
            service = services[0] if i < GOOD_PER_POD // 2 else services[1]
            level = ("INFO", "WARNING", "ERROR")[i % 3]
            ts = now - (GOOD_PER_POD - i) * 1_000_000
            lines.append(cri_line(cri_time(ts), good_payload(n, ts, service, level, f"order {i} paid", f"{n:012x}")))
            w.pod[n], w.namespace[n], w.service[n], w.level[n] = pod, namespace, service, level
            n += 1
        (logs / _file(namespace, pod, container)).write_bytes(b"".join(lines))
    lines = []
    for spec in poison_specs():
        lines.append(cri_line(spec.cri_ts or cri_time(now), bad_payload(n, spec)))
        w.pod[n], w.namespace[n], w.poison[n] = EVIL[1], EVIL[0], spec.kind
        n += 1
    (logs / _file(*EVIL)).write_bytes(b"".join(lines))
    return w


def _config(tmp: Path, port: int, run: str, loki: str, es: str, aws: str) -> str:
    """deploy/kubernetes (base and overlays) in one file, plus a ``run`` label to find this run in Loki.

    Not here: the forward source and ``kubernetes_api`` (no API server in this test; without one the
    source ships with path metadata, which is what this file has)."""
    return f"""
data_dir: {tmp}/data
api: {{address: "127.0.0.1:{port}"}}
shutdown_timeout_secs: 30
sources:
  containers:
    type: file
    include: ["{tmp}/containers/*.log"]
    exclude: ["{tmp}/containers/*_ecvi-logs_*.log"]
    format: cri
    read_from: beginning
    glob_interval_secs: 0.2
    multiline: {{}}
transforms:
  redact: {{type: redact, inputs: [containers]}}
  tag: {{type: add_fields, inputs: [redact], fields: {{run: "{run}"}}, overwrite: true}}
sinks:
  loki:
    type: loki
    inputs: [tag]
    endpoint: "{loki}"
    labels: {{service: "{{{{ service }}}}", level: "{{{{ level }}}}", namespace: "{{{{ kubernetes.namespace }}}}",
              run: "{{{{ run }}}}"}}
    batch: {{max_events: 1000, timeout_secs: 0.5}}
  elasticsearch:
    type: elasticsearch
    inputs: [redact]
    endpoint: "{es}"
    index: "poison-{run}-%Y.%m.%d"
    batch: {{max_events: 1000, timeout_secs: 0.5}}
  cloudwatch:
    type: cloudwatch
    inputs: [redact]
    region: us-east-1
    endpoint: "{aws}"
    group: /ecvi/poison-{run}
    stream: "{{{{ kubernetes.pod_name }}}}"
    retention_days: 30
    batch: {{max_events: 1000, timeout_secs: 0.5}}
"""


# -- reading back --------------------------------------------------------------------------------------


@dataclass
class Stored:
    """What one backend holds of this run: marker -> where (Loki labels, ES index + kubernetes, CW stream)."""

    where: dict[int, list[Any]] = field(default_factory=dict)
    unmarked: int = 0

    def add(self, text: bytes | str, where: Any) -> None:
        n = marker_of(text)
        if n is None:
            self.unmarked += 1
        else:
            self.where.setdefault(n, []).append(where)


def loki_stored(url: str, run: str, start_ns: int, end_ns: int) -> Stored:
    out = Stored()
    seen: set[tuple[int, str]] = set()
    cursor = start_ns
    while True:
        resp = httpx.get(f"{url}/loki/api/v1/query_range", params={
            "query": f'{{run="{run}"}}', "start": str(cursor), "end": str(end_ns), "limit": "5000",
            "direction": "forward"}, timeout=60)
        resp.raise_for_status()
        page = [(int(ts), line, s["stream"]) for s in resp.json()["data"]["result"] for ts, line in s["values"]]
        fresh = [e for e in page if (e[0], e[1]) not in seen]
        for ts, line, labels in fresh:
            seen.add((ts, line))
            out.add(line, {k: labels.get(k) for k in ("service", "level", "namespace")})
        if len(page) < 5000 or not fresh:
            return out
        cursor = max(ts for ts, _, _ in page)


def es_stored(url: str, run: str) -> Stored:
    out = Stored()
    index = f"poison-{run}-*"
    httpx.post(f"{url}/{index}/_refresh", timeout=60)
    resp = httpx.post(f"{url}/{index}/_search", params={"scroll": "2m"},
                      json={"size": 2000, "query": {"match_all": {}}}, timeout=120)
    if resp.status_code == 404:
        return out
    resp.raise_for_status()
    body: dict[str, Any] = resp.json()
    while body["hits"]["hits"]:
        for hit in body["hits"]["hits"]:
            src = hit["_source"]
            k8s = src.get("kubernetes") if isinstance(src.get("kubernetes"), dict) else {}
            out.add(orjson.dumps(src), {"index": hit["_index"], "namespace": k8s.get("namespace"),
                                        "pod": k8s.get("pod_name")})
        body = httpx.post(f"{url}/_search/scroll", json={"scroll": "2m", "scroll_id": body["_scroll_id"]},
                          timeout=120).json()
    return out


def cloudwatch_stored(client: Any, group: str) -> Stored:
    out = Stored()
    try:
        streams = [s["logStreamName"] for page in client.get_paginator("describe_log_streams").paginate(
            logGroupName=group) for s in page["logStreams"]]
    except client.exceptions.ResourceNotFoundException:
        return out
    for stream in streams:
        token = None
        while True:
            kw: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
            if token:
                kw["nextToken"] = token
            page = client.get_log_events(**kw)
            for e in page["events"]:
                out.add(e["message"], stream)
            if not page["events"] or page.get("nextForwardToken") in (None, token):
                break
            token = page["nextForwardToken"]
    return out


def dead_lettered(data: Path, sink: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for entry in read_dead_letters(dead_letter_path(data, sink)):
        n = marker_of(entry["event"]["raw"]) if "event" in entry else None
        if n is not None:
            out.setdefault(n, []).append(str(entry.get("reason") or ""))
    return out


# -- the test ------------------------------------------------------------------------------------------


def test_poison_lines_from_one_pod(tmp_path: Path, loki: Any, es: Any, aws_env: Any) -> None:
    run = uuid.uuid4().hex[:8]
    logs = tmp_path / "containers"
    logs.mkdir()
    port = free_port()
    config = tmp_path / "shipper.yaml"
    config.write_text(_config(tmp_path, port, run, loki.url, es.url, aws_env.url))
    start_ns = time.time_ns() - 8 * 24 * 3600 * 10**9  # Loki keeps a week; older poison is refused
    w = write_workload(logs)
    good, poison = set(w.good), set(w.poison)
    shipper = Shipper(config, tmp_path / "shipper.log")
    shipper.start()
    shipper.wait_ready(port, 120)
    group = f"/ecvi/poison-{run}"
    logs_client = aws_env.client("logs")
    data = tmp_path / "data"

    def read_all() -> dict[str, Stored]:
        end_ns = time.time_ns() + 2 * 3600 * 10**9
        return {"loki": loki_stored(loki.url, run, start_ns, end_ns), "elasticsearch": es_stored(es.url, run),
                "cloudwatch": cloudwatch_stored(logs_client, group)}

    progress: list[tuple[int, ...]] = []

    def settled() -> bool:
        """Every line stored or dead-lettered everywhere, or no change for 45 s after each sink stored some."""
        shipper.sample()
        stored = read_all()
        dead = {s: set(dead_lettered(data, s)) for s in SINKS}
        progress.append(tuple(n for s in SINKS for n in (len(stored[s].where), len(dead[s]))))
        if len(progress) > 15 and len(set(progress[-15:])) == 1 and all(progress[-1][::2]):
            return True
        return all(good <= set(stored[s].where) and poison <= set(stored[s].where) | dead[s] for s in SINKS)

    wait_for(settled, scaled(300, 1200), 3.0)
    alive = shipper.proc is not None and shipper.proc.poll() is None
    ready = _ready(port) if alive else None
    stored = read_all()
    dead = {s: dead_lettered(data, s) for s in SINKS}
    shipper.stop()

    problems: list[str] = []
    share = 100 * len(poison) / len(w.pod)
    notes = [f"lines generated   {len(w.pod)}",
             f"poison lines      {len(poison)} ({share:.1f} %, {JUNK_SERVICES} of them junk services)",
             f"shipper alive     {alive}, /ready {ready}"]
    for s in SINKS:
        got, gone = stored[s], dead[s]
        delivered_poison = poison & set(got.where)
        dead_poison = poison & set(gone)
        lost_poison = poison - delivered_poison - dead_poison
        notes.append(f"{s:16s}  poison: delivered {len(delivered_poison)}, dead-lettered {len(dead_poison)} "
                     f"(both {len(delivered_poison & dead_poison)}), lost {len(lost_poison)}")
        if lost_poison:
            kinds = Counter(w.poison[n] for n in lost_poison)
            problems.append(f"{s}: {len(lost_poison)} poison lines neither stored nor dead-lettered: {dict(kinds)}")
        if no_reason := [n for n in dead_poison if any(not r.strip() for r in gone[n])]:
            problems.append(f"{s}: {len(no_reason)} poison lines dead-lettered without a reason")
        if good_dead := sorted(good & set(gone)):
            problems.append(f"{s}: {len(good_dead)} good lines dead-lettered, first: {gone[good_dead[0]][0][:200]}")
        if got.unmarked:
            problems.append(f"{s}: {got.unmarked} stored entries carry no line marker")
        for _ns, pod, _c, _svc in GOOD_PODS:
            mine = [n for n in good if w.pod[n] == pod]
            notes.append(f"  {pod:22s} generated {len(mine)}, stored {sum(1 for n in mine if n in got.where)}")
        problems += _isolation_problems(s, w, got)
    summary = Summary("poison", len(good), {s: Counter({n: len(stored[s].where.get(n, [])) for n in good
                                                       if n in stored[s].where}) for s in SINKS},
                      shipper.peak_rss, 0, notes)
    summary.write()
    for s in SINKS:
        lost = summary.lost(s)
        if lost:
            problems.append(f"{s}: {len(lost)} good lines lost, by pod {dict(Counter(w.pod[n] for n in lost))}")
    if not alive or ready != 200:
        problems.append(f"shipper alive {alive}, /ready answered {ready}")
    assert not problems, "\n".join(problems)


def _isolation_problems(sink: str, w: Workload, got: Stored) -> list[str]:
    """The good pods' streams, documents and label sets are exactly theirs; no poison line is among them."""
    problems: list[str] = []
    for n, places in got.where.items():
        for where in places:
            if sink == "loki":
                if n in w.poison:
                    if where["namespace"] != EVIL[0]:
                        problems.append(f"loki: poison line {n} ({w.poison[n]}) in a {where['namespace']} stream")
                elif where != {"service": w.service[n], "level": w.level[n], "namespace": w.namespace[n]}:
                    problems.append(f"loki: good line {n} of {w.pod[n]} under labels {where}, expected service "
                                    f"{w.service[n]!r} level {w.level[n]!r} namespace {w.namespace[n]!r}")
            elif sink == "elasticsearch":
                if (where["namespace"], where["pod"]) != (w.namespace[n], w.pod[n]):
                    problems.append(f"elasticsearch: line {n} of {w.pod[n]} stored as {where}")
            elif where != w.pod[n]:
                problems.append(f"cloudwatch: line {n} of {w.pod[n]} ({w.poison.get(n, 'good')}) in stream {where!r}")
    if len(problems) > 10:
        problems = [*problems[:10], f"{sink}: ... and {len(problems) - 10} more isolation problems"]
    return problems


def _ready(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None
