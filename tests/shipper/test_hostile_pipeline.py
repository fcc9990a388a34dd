"""Hostile lines through the real file source and every sink's real encoder, delivery loop and dead letters.

Lines with out-of-range times, deep JSON, odd keys and values, invalid UTF-8, control characters,
fields named like metadata, huge lines and junk label values are written CRI-wrapped beside good
lines, read by the real ``FileSource``, and delivered by the real ``SinkDriver`` (with its disk
buffer) through each sink: Loki (protobuf and JSON), Elasticsearch, CloudWatch Logs, file and s3,
their network replaced by the in-memory backends of ``tests/reliability/_memory_backends.py``.

The properties: every good line is delivered exactly as when it is read without the bad ones; every
bad line is delivered in a form the backend can hold or dead-lettered with a reason; no worker dies
and the buffer drains (nothing is retried forever). A deploy-shaped ``Topology`` (file source,
redact, all five sink types) is checked the same way end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from shipper.archive.storage.local import LocalStore
from shipper.buffer import DiskBuffer
from shipper.config import parse_config
from shipper.event import Event
from shipper.sinks._common.base import Sink
from shipper.sinks._common.config import SinkConfigBase
from shipper.sinks._common.dead_letter import dead_letter_path, read_dead_letters
from shipper.sinks._common.driver import SinkDriver
from shipper.sinks.cloudwatch.config import CloudWatchSinkConfig
from shipper.sinks.cloudwatch.sink import CloudWatchSink
from shipper.sinks.elasticsearch.config import ElasticsearchSinkConfig
from shipper.sinks.elasticsearch.sink import ElasticsearchSink
from shipper.sinks.file.config import FileSinkConfig
from shipper.sinks.file.sink import FileSink
from shipper.sinks.loki.config import LokiSinkConfig
from shipper.sinks.loki.labels import OVERFLOW_VALUE
from shipper.sinks.loki.sink import LokiSink
from shipper.sinks.s3.config import S3SinkConfig
from shipper.sinks.s3.sink import S3Sink
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.source import FileSource
from shipper.topology import Topology
from tests.reliability._memory_backends import Capture, MemoryLogs, es_handler, loki_handler, ts_problem
from tests.reliability._poison_lines import (
    BAD_UTF8,
    COLLIDING,
    COLLIDING_VALUES,
    CONTROLS,
    CRI_TIMES,
    DEEP_KEYS,
    ODD_KEYS,
    ODD_VALUES,
    TIME_KEYS,
    TIME_VALUES,
    Bad,
    bad_payload,
    cri_line,
    cri_time,
    good_payload,
    marker_of,
)

MAX_LINE = 8192
DRAIN_SECS = 8.0
EVIL_FILE = f"evil-7c9f_sandbox_app-{'e' * 64}.log"
PAYMENTS_FILE = f"payments-api-5f7d9_payments_api-{'a' * 64}.log"
PAYMENTS_BASE = 100_000  # markers of the payments pod's lines start here
_S3_KEY = re.compile(r"date=\d{4}-\d\d-\d\d/hour=\d\d/node=node-1/-?\d{18,19}-[0-9a-f]{20}\.ndjson\.gz")
_POSITIONAL = ("file", "offset", "id")  # where a line sat in its file: differs between two files by design


# -- scenarios -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Good:
    age_ms: int
    service: str
    level: str
    text: str
    request_id: str


Spec = Good | Bad


@dataclass
class Scenario:
    """The sandbox pod writes ``evil`` (good and bad lines mixed); the payments pod only good lines."""

    evil: list[Spec]
    payments: list[Good]
    now_ns: int = field(default_factory=time.time_ns)

    def kinds(self) -> dict[int, str]:
        """Marker -> "good" or the bad kind."""
        out = {n: "good" if isinstance(s, Good) else s.kind for n, s in enumerate(self.evil)}
        out.update({PAYMENTS_BASE + i: "good" for i in range(len(self.payments))})
        return out

    def write(self, root: Path, with_bad: bool) -> int:
        """Write both pods' files under ``root/containers``; returns the number of lines written."""
        d = root / "containers"
        d.mkdir(parents=True)
        evil = [self._line(n, s) for n, s in enumerate(self.evil) if with_bad or isinstance(s, Good)]
        payments = [self._line(PAYMENTS_BASE + i, s) for i, s in enumerate(self.payments)]
        (d / EVIL_FILE).write_bytes(b"".join(evil))
        (d / PAYMENTS_FILE).write_bytes(b"".join(payments))
        return len(evil) + len(payments)

    def _line(self, n: int, spec: Spec) -> bytes:
        if isinstance(spec, Good):
            ts = self.now_ns - spec.age_ms * 1_000_000
            return cri_line(cri_time(ts), good_payload(n, ts, spec.service, spec.level, spec.text, spec.request_id))
        return cri_line(spec.cri_ts or cri_time(self.now_ns), bad_payload(n, spec))


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40)
goods = st.builds(Good, age_ms=st.integers(0, 3_000_000), service=st.sampled_from(["api", "worker", "web"]),
                  level=st.sampled_from(["DEBUG", "INFO", "WARNING", "ERROR"]), text=_text,
                  request_id=st.text("0123456789abcdef", min_size=8, max_size=16))
_one_line = st.text(max_size=200).map(lambda s: s.replace("\n", " "))
_cri_ts = st.one_of(st.none(), st.sampled_from(CRI_TIMES))
bads = st.one_of(
    st.builds(Bad, st.just("time"), st.tuples(st.sampled_from(TIME_KEYS), st.one_of(
        st.sampled_from(TIME_VALUES), st.integers(-(10**30), 10**30).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr))), _cri_ts),
    # Depth as an integer, the nesting built from it: hypothesis never builds deep trees itself.
    st.builds(Bad, st.just("deep"), st.tuples(st.integers(0, 2000), st.sampled_from(["list", "dict", "mixed"]),
                                              st.sampled_from(DEEP_KEYS))),
    st.builds(Bad, st.just("odd"), st.tuples(st.sampled_from(ODD_KEYS), st.sampled_from(ODD_VALUES))),
    st.builds(Bad, st.just("utf8"), st.tuples(st.lists(st.sampled_from(BAD_UTF8), min_size=1, max_size=4)
                                              .map(b"".join), st.booleans())),
    st.builds(Bad, st.just("control"), st.tuples(st.lists(st.sampled_from(CONTROLS), min_size=1, max_size=4)
                                                 .map("".join), st.booleans())),
    st.builds(Bad, st.just("collide"), st.tuples(st.sampled_from(COLLIDING), st.sampled_from(COLLIDING_VALUES))),
    st.builds(Bad, st.just("huge"), st.tuples(st.integers(MAX_LINE - 16, 4 * MAX_LINE),
                                              st.sampled_from(["a", "é", "中", "😀"]), st.booleans())),
    st.builds(Bad, st.just("service"), st.tuples(st.one_of(
        _one_line, st.sampled_from(["", OVERFLOW_VALUE, "x" * 3000, '"}', "\\", "{{ service }}"]),
        st.integers(), st.none(), st.lists(st.integers(), max_size=3)))),
    st.builds(Bad, st.just("text"), st.tuples(_one_line)),
    st.builds(Bad, st.just("broken"), st.tuples(_one_line)),
)
scenarios = st.builds(Scenario, st.lists(st.one_of(goods, bads), min_size=1, max_size=24),
                      st.lists(goods, min_size=1, max_size=4))


def _kind_examples(kind: str) -> list[Bad]:
    """Every listed value of one kind (deterministic, for the per-kind test)."""
    if kind == "time":
        return [Bad("time", (k, v), CRI_TIMES[i % len(CRI_TIMES)] if i % 3 == 0 else None)
                for i, (k, v) in enumerate((TIME_KEYS[i % len(TIME_KEYS)], v) for i, v in enumerate(TIME_VALUES))]
    if kind == "deep":
        return [Bad("deep", (d, shape, key)) for d, shape, key in [
            (0, "list", "d"), (1, "dict", "d"), (100, "dict", "d"), (254, "dict", "d"), (256, "list", "d"),
            (300, "dict", "d"), (300, "list", "request_id"), (300, "dict", "service"), (600, "mixed", "d"),
            (999, "list", "d"), (1000, "dict", "kubernetes"), (1023, "dict", "d"), (1024, "list", "message"),
            (1025, "dict", "d"), (2000, "list", "d"), (2000, "dict", "level")]]
    if kind == "odd":
        return [Bad("odd", (ODD_KEYS[i % len(ODD_KEYS)], v)) for i, v in enumerate(ODD_VALUES)]
    if kind == "utf8":
        return [Bad("utf8", (junk, i % 2 == 0)) for i, junk in enumerate(BAD_UTF8 * 2)]
    if kind == "control":
        return [Bad("control", (c, i % 2 == 0)) for i, c in enumerate(CONTROLS * 2)]
    if kind == "collide":
        return [Bad("collide", (k, COLLIDING_VALUES[i % len(COLLIDING_VALUES)])) for i, k in enumerate(COLLIDING)]
    if kind == "huge":
        return [Bad("huge", (n, fill, as_json)) for n, fill, as_json in [
            (MAX_LINE - 30, "a", True), (MAX_LINE + 1, "é", False), (3 * MAX_LINE, "中", True),
            (2 * MAX_LINE, "😀", False), (MAX_LINE * 4, "a", False)]]
    if kind == "service":
        return [Bad("service", (v,)) for v in ["", OVERFLOW_VALUE, "x" * 3000, '"}', "\\", "{{ service }}",
                                                "a\u2028b", "\x00", 7, None, [1], {"k": "v"}, "payments"]]
    return [Bad(kind, (t,)) for t in ["", "{", "}{", "not json", '{"a":', "\x00\x01", "\u2028", "\\u0000"]]


def _per_kind(kind: str) -> Scenario:
    good = [Good(i * 1000, "api", "INFO", f"good {i}", f"{i:08x}") for i in range(4)]
    specs: list[Spec] = []
    for i, bad in enumerate(_kind_examples(kind)):
        specs.append(bad)
        if i % 3 == 0:
            specs.append(good[(i // 3) % len(good)])
    return Scenario([*specs, *good], good[:2])


# -- reading the files with the real file source --------------------------------------------------------


def _source_config(root: Path) -> FileSourceConfig:
    return FileSourceConfig.model_validate({
        "type": "file", "include": [f"{root}/containers/*.log"], "format": "cri", "max_line_bytes": MAX_LINE,
        "glob_interval_secs": 0.05, "poll_interval_secs": 0.01})


async def _read(root: Path, expect: int) -> list[Event]:
    got: list[Event] = []

    async def deliver(events: list[Event]) -> None:
        got.extend(events)

    src = FileSource("app", _source_config(root), deliver, root / "source-data")
    task = asyncio.create_task(src.run())
    loop = asyncio.get_running_loop()
    end = loop.time() + DRAIN_SECS
    while len(got) < expect and not task.done() and loop.time() < end:
        await asyncio.sleep(0.01)
    await src.stop()
    await asyncio.wait_for(task, 5)
    src.close()
    return got


# -- sinks whose network is an in-memory backend -----------------------------------------------------------


_COMMON: dict[str, Any] = {"inputs": ["app"], "healthcheck": False,
                           "batch": {"max_events": 16, "timeout_secs": 0.01},
                           "request": {"concurrency": 2, "retry": {"initial_backoff_secs": 0.001,
                                                                     "max_backoff_secs": 0.01}}}
LOKI_LABELS = {"service": "{{ service }}", "level": "{{ level }}", "namespace": "{{ kubernetes.namespace }}"}
SINKS = ("loki_protobuf", "loki_json", "elasticsearch", "cloudwatch", "file", "s3")


@dataclass
class Backend:
    """One sink with its in-memory backend; ``stored()`` reads back what the backend holds."""

    sink: Sink
    config: SinkConfigBase
    capture: Capture
    out: Path

    def stored(self) -> Capture:
        if isinstance(self.sink, FileSink):
            _read_file_sink(self.out, self.capture)
        elif isinstance(self.sink, S3Sink):
            _read_s3_objects(self.out, self.capture)
        return self.capture


def _mock_client(handler: Any) -> Any:
    def build(*_args: Any, **_kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(handler))

    return build


@contextlib.contextmanager
def memory_backends(work: Path, loki_max_label_values: int = 500) -> Iterator[dict[str, Backend]]:
    """Every sink type over its in-memory backend (sinks built as the registry builds them)."""
    out: dict[str, Backend] = {}
    with pytest.MonkeyPatch.context() as mp:
        for name in SINKS:
            cap = Capture(name)
            where = work / name
            sink: Sink
            if name.startswith("loki"):
                encoding = name.split("_")[1]
                loki = LokiSinkConfig.model_validate({
                    **_COMMON, "type": "loki", "endpoint": "http://loki.invalid", "labels": LOKI_LABELS,
                    "encoding": encoding, "max_label_values": loki_max_label_values})
                sink = LokiSink(name, loki, str(where))
                # Two Loki sinks: each gets its own client rather than one patched builder.
                sink._client = _mock_client(loki_handler(cap, encoding))()
            elif name == "elasticsearch":
                es = ElasticsearchSinkConfig.model_validate({
                    **_COMMON, "type": "elasticsearch", "endpoint": "http://es.invalid", "install_template": False})
                sink = ElasticsearchSink(name, es, str(where))
                mp.setattr("shipper.sinks.elasticsearch.sink.build_client", _mock_client(es_handler(cap)))
            elif name == "cloudwatch":
                cw = CloudWatchSinkConfig.model_validate({
                    **_COMMON, "type": "cloudwatch", "region": "us-east-1", "group": "/ecvi/backend",
                    "stream": "{{ kubernetes.pod_name }}"})
                sink = CloudWatchSink(name, cw, str(where), client=cast(Any, MemoryLogs(cap, time.time)))
            elif name == "file":
                out_cfg = FileSinkConfig.model_validate({
                    **_COMMON, "type": "file", "path": f"{where}/out/%Y-%m-%d.ndjson", "encoding": "event"})
                sink = FileSink(name, out_cfg, str(where))
            else:
                s3 = S3SinkConfig.model_validate({**_COMMON, "type": "s3", "url": f"file://{where}/archive",
                                                  "node": "node-1"})
                sink = S3Sink(name, s3, str(where), store=LocalStore(where / "archive"))
            cfg: SinkConfigBase = sink.config
            out[name] = Backend(sink, cfg, cap, where)
        yield out


def _strip(meta: Any) -> Any:
    return {k: v for k, v in meta.items() if k not in _POSITIONAL} if isinstance(meta, dict) else meta


def _read_file_sink(where: Path, cap: Capture) -> None:
    for p in sorted((where / "out").glob("*")):
        if not re.fullmatch(r"\d{4}-\d\d-\d\d\.ndjson", p.name):
            cap.problem(f"output file named {p.name!r} from an event time no reader expects")
        for line in p.read_bytes().splitlines():
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                cap.problem(f"{p.name}: line does not parse ({exc}): {line[:100]!r}")
                continue
            if why := ts_problem(doc["ts_ns"]):
                cap.problem(f"{p.name}: {why}")
            cap.add(line, (doc["ts_ns"], doc["record"], _strip(doc["meta"])))


def _read_s3_objects(where: Path, cap: Capture) -> None:
    root = where / "archive"
    for p in sorted(root.rglob("*.ndjson.gz")):
        key = p.relative_to(root).as_posix()
        if not _S3_KEY.fullmatch(key):
            cap.problem(f"object key {key!r} is not date=YYYY-MM-DD/hour=HH/node=/<ts>-<digest>")
        for line in gzip.decompress(p.read_bytes()).splitlines():
            doc = orjson.loads(line)
            if why := ts_problem(doc["ts_ns"]):
                cap.problem(f"{key}: {why}")
            cap.add(line, (doc["ts_ns"], doc["line"], doc.get("record"), _strip(doc["meta"])))


# -- one delivery through SinkDriver ---------------------------------------------------------------------


@dataclass
class Run:
    delivered: dict[int | None, list[Any]]
    dead: dict[int | None, list[str]]
    problems: list[str]


async def drive(backend: Backend, events: list[Event], work: Path) -> Run:
    """Append ``events`` to a disk buffer and let the real driver deliver them until drained."""
    name = backend.sink.name
    problems: list[str] = []
    buf = DiskBuffer(work / "buffer" / name, name, fsync="never")
    await buf.append(events)
    driver = SinkDriver(backend.sink, buf, backend.config, str(work))
    await driver.start()
    loop = asyncio.get_running_loop()
    end = loop.time() + DRAIN_SECS
    workers = list(driver._tasks)  # to see whether one died
    while buf.pending_events and loop.time() < end and not any(t.done() for t in workers):
        await asyncio.sleep(0.01)
    for t in workers:
        if t.done() and not t.cancelled() and t.exception() is not None:
            problems.append(f"{name}: a delivery worker died: {t.exception()!r}"[:400])
    if buf.pending_events:
        problems.append(f"{name}: {buf.pending_events} events still buffered after {DRAIN_SECS}s "
                        "(a worker died or a batch is retried without end)")
    await driver.stop(0.2)
    dead = dead_letters(work, name, problems)
    cap = backend.stored()
    return Run(cap.by_marker(), dead, problems + cap.problems)


def dead_letters(data_dir: Path, sink: str, problems: list[str]) -> dict[int | None, list[str]]:
    """The reasons a sink dead-lettered each generated line for (a damaged entry is a problem)."""
    dead: dict[int | None, list[str]] = {}
    for entry in read_dead_letters(dead_letter_path(data_dir, sink)):
        if "error" in entry:
            problems.append(f"{sink}: dead-letter file damaged: {entry['error']}")
            continue
        dead.setdefault(marker_of(entry["event"]["raw"]), []).append(str(entry.get("reason") or ""))
    return dead


def check(name: str, kinds: dict[int, str], mixed: Run, alone: Run) -> list[str]:
    """The properties for one sink; returns what is wrong (empty when all hold)."""
    problems = list(mixed.problems)
    if None in mixed.delivered:
        problems.append(f"{name}: {len(mixed.delivered[None])} stored units carry no line marker: "
                        f"{mixed.delivered[None][0]!r:.200}")
    for n, kind in kinds.items():
        got, dead = mixed.delivered.get(n, []), mixed.dead.get(n, [])
        if kind == "good":
            if dead:
                problems.append(f"{name}: good line {n} dead-lettered beside bad ones: {dead[0][:200]}")
            if sorted(map(repr, got)) != sorted(map(repr, alone.delivered.get(n, []))):
                problems.append(f"{name}: good line {n} delivered as {got!r:.160} beside bad ones, "
                                f"but as {alone.delivered.get(n)!r:.160} alone")
        elif not got and not dead:
            problems.append(f"{name}: bad line {n} ({kind}) neither delivered nor dead-lettered")
        elif any(not r.strip() for r in dead):
            problems.append(f"{name}: bad line {n} ({kind}) dead-lettered without a reason")
    return problems


async def _deliver_scenario(scenario: Scenario, work: Path) -> list[str]:
    problems: list[str] = []
    runs: dict[str, dict[str, Run]] = {}
    for label, with_bad in (("mixed", True), ("alone", False)):
        root = work / label
        expect = scenario.write(root, with_bad)
        events = await _read(root, expect)
        if len(events) != expect:
            problems.append(f"file source ({label}): {len(events)} events from {expect} lines")
        with memory_backends(root / "sinks") as backends:
            runs[label] = {n: await drive(b, events, root / "sinks" / n) for n, b in backends.items()}
    for name in SINKS:
        alone = runs["alone"][name]
        baseline = [f"baseline {p}" for p in alone.problems]
        baseline += [f"baseline {name}: good line {n} stored {len(alone.delivered.get(n, []))} times"
                     for n, kind in scenario.kinds().items()
                     if kind == "good" and len(alone.delivered.get(n, [])) != 1]
        problems += baseline or check(name, scenario.kinds(), runs["mixed"][name], alone)
    return problems


def report(problems: list[str], per_sink: int = 4) -> str:
    """At most ``per_sink`` problems of each sink (or stage), so every sink's failures show."""
    by: dict[str, list[str]] = {}
    for p in problems:
        by.setdefault(p.split(":", 1)[0], []).append(p)
    lines = [f"{len(problems)} problem(s):"]
    for group in by.values():
        lines += group[:per_sink]
        if len(group) > per_sink:
            lines.append(f"  ... and {len(group) - per_sink} more like these")
    return "\n".join(lines)


async def _deliver(scenario: Scenario) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        return await asyncio.wait_for(_deliver_scenario(scenario, Path(tmp)), 120)


def _run(scenario: Scenario) -> list[str]:
    """:func:`_deliver` for hypothesis, whose examples are plain calls (each gets a fresh loop)."""
    return asyncio.run(_deliver(scenario))


# -- the tests -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["time", "deep", "odd", "utf8", "control", "collide", "huge", "service",
                                  "text", "broken"])
@pytest.mark.anyio
async def test_each_hostile_kind_through_every_sink(kind: str) -> None:
    problems = await _deliver(_per_kind(kind))
    assert not problems, report(problems)


# No shrinking: a failing example costs seconds, and the report already names each failing line's kind.
@settings(max_examples=12, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios)
def test_hostile_lines_mixed_with_good_ones_through_every_sink(scenario: Scenario) -> None:
    problems = _run(scenario)
    assert not problems, report(problems)


@pytest.mark.anyio
async def test_junk_services_from_one_pod_leave_other_pods_labels_alone() -> None:
    """A pod writing more distinct services than the label budget spends its own budget only.

    The sandbox pod's file sorts first, so its junk reaches the sink before the payments pod's lines.
    """
    good = [Good(i * 10, ["api", "worker", "web"][i % 3], "INFO", f"ok {i}", f"{i:08x}") for i in range(6)]
    scenario = Scenario([Bad("service", (f"junk-{i}",)) for i in range(40)], good)

    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        work = Path(tmp)
        expect = scenario.write(work, True)
        events = await _read(work, expect)
        with memory_backends(work / "sinks", loki_max_label_values=10) as backends:
            run = await drive(backends["loki_protobuf"], events, work / "sinks" / "loki")
        assert not run.problems, run.problems
        delivered = run.delivered
    payments = {n: v for n, v in delivered.items() if n is not None and n >= PAYMENTS_BASE}
    assert len(payments) == len(good)
    overflowed = [(n, labels) for n, units in payments.items() for labels, *_ in units if OVERFLOW_VALUE in labels]
    assert not overflowed, f"the payments pod's streams were overflowed by the sandbox pod's services: {overflowed}"


# -- the deploy shape end to end ----------------------------------------------------------------------------


def _deploy_config(root: Path) -> str:
    common = ('healthcheck: false, batch: {max_events: 16, timeout_secs: 0.02}, '
              'request: {retry: {initial_backoff_secs: 0.001, max_backoff_secs: 0.01}}')
    return f"""
data_dir: {root}/data
sources:
  containers: {{type: file, include: ["{root}/containers/*.log"], format: cri, read_from: beginning,
               max_line_bytes: {MAX_LINE}, glob_interval_secs: 0.05, poll_interval_secs: 0.01}}
transforms:
  redact: {{type: redact, inputs: [containers]}}
sinks:
  loki: {{type: loki, inputs: [redact], endpoint: "http://loki.invalid",
          labels: {{service: "{{{{ service }}}}", level: "{{{{ level }}}}",
                   namespace: "{{{{ kubernetes.namespace }}}}"}},
          {common}}}
  es: {{type: elasticsearch, inputs: [redact], endpoint: "http://es.invalid", index: "ecvi-logs-%Y.%m.%d",
        install_template: false, {common}}}
  cloudwatch: {{type: cloudwatch, inputs: [redact], region: us-east-1, group: /ecvi/backend,
                stream: "{{{{ kubernetes.pod_name }}}}", {common}}}
  out: {{type: file, inputs: [redact], path: "{root}/out/%Y-%m-%d.ndjson", encoding: event, {common}}}
  archive: {{type: s3, inputs: [redact], url: "file://{root}/archive", node: node-1, {common}}}
"""


async def _topology_run(root: Path, expect: set[int]) -> tuple[dict[str, Run], list[str]]:
    """Run the deploy-shaped pipeline until every line is stored or dead-lettered everywhere."""
    caps = {name: Capture(name) for name in ("loki", "es", "cloudwatch", "out", "archive")}
    problems: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("shipper.sinks.loki.sink.build_client", _mock_client(loki_handler(caps["loki"], "protobuf")))
        mp.setattr("shipper.sinks.elasticsearch.sink.build_client", _mock_client(es_handler(caps["es"])))
        mp.setattr("shipper.sinks.cloudwatch.sink.build_client", lambda _cfg: MemoryLogs(caps["cloudwatch"], time.time))
        topology = Topology(parse_config(_deploy_config(root), env={}))
        await topology.start()
        loop = asyncio.get_running_loop()
        end = loop.time() + 3 * DRAIN_SECS

        def seen(name: str) -> set[int | None]:
            if name in ("out", "archive"):
                caps[name] = Capture(name)
                (_read_file_sink if name == "out" else _read_s3_objects)(root, caps[name])
            return {n for n, _ in caps[name].units} | set(dead_letters(root / "data", name, []))

        while loop.time() < end and not all(expect <= seen(n) for n in caps):
            if any(t.done() for t in topology._tasks):
                break
            await asyncio.sleep(0.05)
        # Stored is not yet acknowledged: give the drivers a moment to acknowledge what they sent.
        settle = loop.time() + 5
        while any(b.pending_events for b in topology.buffers.values()) and loop.time() < settle:
            await asyncio.sleep(0.02)
        problems += [f"source task ended: {t.exception()!r}"[:300] for t in topology._tasks
                     if t.done() and not t.cancelled() and t.exception()]
        if any(t.done() for t in topology._tasks):
            problems.append("the file source stopped reading")
        problems += [f"{n}: {b.pending_events} events still buffered" for n, b in topology.buffers.items()
                     if b.pending_events]
        await topology.stop()
    caps["out"], caps["archive"] = Capture("out"), Capture("archive")
    _read_file_sink(root, caps["out"])
    _read_s3_objects(root, caps["archive"])
    runs: dict[str, Run] = {}
    for name, cap in caps.items():
        found = list(cap.problems)
        runs[name] = Run(cap.by_marker(), dead_letters(root / "data", name, found), found)
    return runs, problems


@pytest.mark.anyio
async def test_deploy_shaped_pipeline_with_every_hostile_kind() -> None:
    kinds = ["time", "deep", "odd", "utf8", "control", "collide", "huge", "service", "text", "broken"]
    good = [Good(i * 1000, ["api", "worker"][i % 2], "INFO", f"good {i}", f"{i:08x}") for i in range(6)]
    evil: list[Spec] = []
    for i, kind in enumerate(kinds):
        evil.extend(_kind_examples(kind)[:: 2 if kind in ("time", "deep") else 3])
        evil.append(good[i % len(good)])
    scenario = Scenario(evil, good[:3])
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hostile-topology-") as tmp:
        results = {}
        for label, with_bad in (("mixed", True), ("alone", False)):
            root = Path(tmp) / label
            scenario.write(root, with_bad)
            expect = {n for n, kind in scenario.kinds().items() if with_bad or kind == "good"}
            results[label], run_problems = await asyncio.wait_for(_topology_run(root, expect), 120)
            problems += [f"{label}: {p}" for p in run_problems]
    for name in results["mixed"]:
        problems += [f"baseline {p}" for p in results["alone"][name].problems]
        problems += check(name, scenario.kinds(), results["mixed"][name], results["alone"][name])
    assert not problems, report(problems)
