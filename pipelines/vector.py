"""Render a shipper config as an equivalent Vector config (YAML), with unit tests Vector can run.

The mapping, option by option, and what has no Vector equivalent is in ``docs/deploy.md``.
Every difference found while rendering is also returned as a note and written at the top of the
output. Targets Vector 0.57 or newer by default (``vector_version``): from 0.57 on, routing
templates made only of event fields (``{{ service }}``) need the sink-level opt-out
``dangerously_allow_unconfined_template_resolution``, and ``${VAR}`` in the file are interpolated
only with ``--dangerously-allow-env-var-interpolation``.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from pipelines import vrl
from shipper.config.model import ShipperConfig
from shipper.sinks._common.config import SinkConfigBase
from shipper.sinks.cloudwatch.config import CloudWatchSinkConfig
from shipper.sinks.elasticsearch.config import ElasticsearchSinkConfig
from shipper.sinks.file.config import FileSinkConfig
from shipper.sinks.loki.config import LokiSinkConfig
from shipper.sinks.loki.encoder import metadata_name
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.forward.config import ForwardSourceConfig
from shipper.transforms.config import AddFieldsConfig, FilterConfig, RedactConfig

#: Vector's smallest disk buffer: 256 MiB plus its ledger.
MIN_DISK_BUFFER_BYTES = 268_435_488
_ENV_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-[^}]*)?\}")
_KUBELET_DIRS = ("/var/log/containers/", "/var/log/pods/")

SAMPLE_RECORD = {
    "timestamp": "2025-01-01T00:00:00.123Z",
    "level": "ERROR",
    "logger": "app.api.v1.companies",
    "message": "Verification failed",
    "request_id": "9f1c2d3e4b5a69788796a5b4c3d2e1f0",
    "user_id": "user-1",
    "company_id": "123e4567-e89b-12d3-a456-426614174000",
    "service": "ecvi-backend",
    "environment": "production",
    "password": "hunter2",
    "headers": {"Authorization": "Bearer abcdefgh12345678"},
}
SAMPLE_CONTAINER_FILE = "/var/log/containers/api-7d9f8_ecvi_api-" + "0123456789abcdef" * 4 + ".log"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (VRL programs) in block style, so the output reads like hand-written YAML."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not any(line != line.rstrip() for line in value.splitlines()) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


@dataclass
class Rendered:
    """A Vector config and what the rendering could not carry over."""

    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    needs_env_interpolation: bool = False

    def to_yaml(self) -> str:
        header = ["# Vector configuration rendered by `ecvi-logs render vector` from an ecvi-logs shipper config."]
        if self.needs_env_interpolation:
            header.append("# It keeps the config's environment variable references: run Vector with")
            header.append("# --dangerously-allow-env-var-interpolation (Vector >= 0.57).")
            header.append("# A doubled dollar sign is a literal one.")
        header.append("# Check it with `vector validate` and `vector test` (the tests: section).")
        if self.notes:
            header.append("# Not carried over exactly:")
            header.extend(f"#   - {note}" for note in self.notes)
        body = yaml.dump(self.config, Dumper=_Dumper, sort_keys=False, width=110, allow_unicode=True)
        return "\n".join(header) + "\n" + body


@dataclass(frozen=True)
class RenderOptions:
    """``kubernetes_logs``: use Vector's kubernetes_logs source for CRI/docker logs of the kubelet
    (metadata from the API, needs RBAC, no end-to-end acknowledgements) instead of the file source
    (metadata from the path, as the shipper does)."""

    vector_version: tuple[int, int] = (0, 57)
    kubernetes_logs: bool = False
    with_tests: bool = True


class _Renderer:
    def __init__(self, cfg: ShipperConfig, raw: dict[str, Any] | None, options: RenderOptions) -> None:
        self.cfg = cfg
        self.raw = raw or {}
        self.opt = options
        self.notes: list[str] = []
        self.env_refs = False
        self.sources: dict[str, Any] = {}
        self.transforms: dict[str, Any] = {}
        self.sinks: dict[str, Any] = {}
        self.tests: list[dict[str, Any]] = []
        # Shipper component name -> the Vector component carrying its output.
        self.outputs: dict[str, str] = {}
        self.rounded: list[str] = []
        self.raised: list[str] = []

    # -- helpers -------------------------------------------------------------------------------------
    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def value(self, key_path: tuple[str, ...], rendered: Any) -> Any:
        """The raw ``${VAR}`` string of the shipper config at ``key_path`` if it has one (Vector
        interpolates it the same way), else the validated value."""
        cur: Any = self.raw
        for part in key_path:
            if not isinstance(cur, dict) or part not in cur:
                return rendered
            cur = cur[part]
        if isinstance(cur, str) and _ENV_REF.search(cur):
            self.env_refs = True
            return cur
        return rendered

    def inputs(self, names: list[str]) -> list[str]:
        return [self.outputs[n] for n in names]

    def unconfined(self, templates: list[str]) -> bool:
        """True when a template starts with an event field (Vector >= 0.57 confinement)."""
        if self.opt.vector_version < (0, 57):
            return False
        return any(vrl.template_fields(t) and t.lstrip().startswith("{{") for t in templates)

    # -- sources -------------------------------------------------------------------------------------
    def source(self, name: str, src: FileSourceConfig | ForwardSourceConfig) -> None:
        key = ("sources", name)
        if isinstance(src, ForwardSourceConfig):
            self.sources[name] = {
                "type": "fluent",
                "address": self.value((*key, "address"), src.address),
                "connection_limit": src.max_connections,
            }
            if src.shared_key:
                self.note(f"sources.{name}.shared_key: Vector's fluent source has no HELO/PING/PONG handshake")
            self.note(f"sources.{name}.max_frame_bytes, max_frame_values, idle_timeout_secs, handshake_timeout_secs, "
                      "max_connections_per_peer: no fluent source equivalent")
            self.parse(name, "fluent", "forward", kubernetes_metadata=False)
            return
        kubelet = src.format in ("cri", "docker") and all(p.startswith(_KUBELET_DIRS) for p in src.include)
        if self.opt.kubernetes_logs and kubelet:
            self.sources[name] = {
                "type": "kubernetes_logs",
                "self_node_name": "${VECTOR_SELF_NODE_NAME}",
                "include_paths_glob_patterns": [_pods_glob(p) for p in src.include],
                "read_from": src.read_from,
                "max_line_bytes": src.max_line_bytes,
                "glob_minimum_cooldown_ms": int(src.glob_interval_secs * 1000),
            }
            excludes = [g for g in (_pods_glob(p, exclude=True) for p in src.exclude) if g]
            if excludes:
                self.sources[name]["exclude_paths_glob_patterns"] = excludes
            if len(excludes) < len(src.exclude):
                self.note(f"sources.{name}.exclude: only /var/log/containers/<pod>_<ns>_<container> globs map to "
                          "kubernetes_logs paths")
            self.env_refs = True
            self.note(f"sources.{name}: kubernetes_logs reads metadata from the Kubernetes API (needs RBAC) and "
                      "has no end-to-end acknowledgements (best-effort delivery)")
            self.parse(name, "kubernetes_logs", src.format, kubernetes_metadata=True)
            return
        self.sources[name] = {
            "type": "file",
            "include": list(src.include),
            "exclude": list(src.exclude),
            "read_from": src.read_from,
            "max_line_bytes": src.max_line_bytes,
            "glob_minimum_cooldown_ms": int(src.glob_interval_secs * 1000),
            "rotate_wait_secs": max(1, math.ceil(src.rotate_wait_secs)),
            "file_key": "file",
            "offset_key": "offset",
        }
        if src.format == "text" or src.multiline is not None:
            ml = src.multiline
            self.sources[name]["multiline"] = {
                # Default: Python tracebacks (indented lines, "Traceback", "During handling...",
                # and the final "SomeError: ..." line continue the event before them).
                "start_pattern": ml.start_pattern if ml and ml.start_pattern else r"^[^\s]",
                "condition_pattern": ml.start_pattern if ml and ml.start_pattern else (
                    r"^(?:[\s]|Traceback |During handling |The above exception |[\w.]+(?:Error|Exception)\b)"),
                "mode": "halt_before" if ml and ml.start_pattern else "continue_through",
                "timeout_ms": ml.timeout_ms if ml else 1000,
            }
            self.note(f"sources.{name}.multiline.max_lines: no file source equivalent")
        if src.format == "cri":
            self.note(f"sources.{name}: partial CRI lines (tag P) are not reassembled by the file source "
                      "(use --kubernetes-logs for auto_partial_merge)")
        self.note(f"sources.{name}: read_chunk_bytes, poll_interval_secs, batch_events have no Vector equivalent")
        self.parse(name, "file", src.format, kubernetes_metadata=src.kubernetes_metadata)

    def parse(self, name: str, kind: str, fmt: str, kubernetes_metadata: bool) -> None:
        out = f"{name}_parse"
        self.transforms[out] = {
            "type": "remap",
            "inputs": [name],
            "drop_on_error": False,
            "source": vrl.parse_program(name, kind, fmt, kubernetes_metadata),
        }
        self.outputs[name] = out
        if self.opt.with_tests:
            self.tests.append(_parse_test(out, kind, fmt))

    # -- transforms ----------------------------------------------------------------------------------
    def transform(self, name: str, t: AddFieldsConfig | FilterConfig | RedactConfig) -> None:
        inputs = self.inputs(t.inputs)
        if isinstance(t, FilterConfig):
            self.transforms[name] = {
                "type": "filter",
                "inputs": inputs,
                "condition": {"type": "vrl", "source": vrl.filter_condition(t.min_level, t.match)},
            }
        elif isinstance(t, RedactConfig):
            self.transforms[name] = {"type": "remap", "inputs": inputs, "source": vrl.redact_program(t.keys)}
            if self.opt.with_tests:
                self.tests.append(_redact_test(name))
        else:
            self.transforms[name] = {"type": "remap", "inputs": inputs,
                                     "source": vrl.add_fields_program(t.fields, t.overwrite)}
        self.outputs[name] = name

    def transforms_in_order(self) -> list[str]:
        """Transform names with every transform after its inputs."""
        done: list[str] = []
        pending = dict(self.cfg.transforms)
        while pending:
            ready = [n for n, t in pending.items() if all(i in self.cfg.sources or i in done for i in t.inputs)]
            if not ready:  # graph_problems() already refused cycles
                raise ValueError("transforms form a cycle")
            for n in ready:
                done.append(n)
                self.transform(n, pending.pop(n))
        return done

    # -- sinks ---------------------------------------------------------------------------------------
    def common(self, name: str, sink: SinkConfigBase) -> dict[str, Any]:
        retry = sink.request.retry
        request: dict[str, Any] = {
            "concurrency": sink.request.concurrency,
            "timeout_secs": max(1, math.ceil(sink.request.timeout_secs)),
            "retry_initial_backoff_secs": max(1, math.ceil(retry.initial_backoff_secs)),
            "retry_max_duration_secs": max(1, math.ceil(retry.max_backoff_secs)),
            "retry_jitter_mode": "Full",
        }
        if retry.initial_backoff_secs < 1 or sink.request.timeout_secs % 1 or retry.max_backoff_secs % 1:
            self.rounded.append(name)
        if retry.max_attempts is not None:
            request["retry_attempts"] = max(0, retry.max_attempts - 1)
            self.note(f"sinks.{name}.request.retry.max_attempts: Vector drops a request after its retries, "
                      "there is no dead-letter file")
        max_size = max(sink.buffer.max_bytes, MIN_DISK_BUFFER_BYTES)
        if max_size != sink.buffer.max_bytes:
            self.raised.append(name)
        if sink.buffer.fsync != "interval" or sink.buffer.segment_bytes != 32 * 1024 * 1024:
            self.note(f"sinks.{name}.buffer.fsync, segment_bytes: Vector's disk buffer syncs on its own schedule")
        return {
            "inputs": [],  # replaced by the sink's own remap
            "batch": {
                "max_events": sink.batch.max_events,
                "max_bytes": sink.batch.max_bytes,
                "timeout_secs": sink.batch.timeout_secs,
            },
            "request": request,
            "buffer": {"type": "disk", "max_size": max_size, "when_full": sink.buffer.when_full},
            "acknowledgements": {"enabled": True},
            "healthcheck": {"enabled": sink.healthcheck},
        }

    def sink(self, name: str, sink: Any) -> None:
        key = ("sinks", name)
        out = self.common(name, sink)
        raw_line = True
        templates: list[str] = []
        es_id = False
        if isinstance(sink, LokiSinkConfig):
            templates = list(sink.labels.values())
            out = {
                "type": "loki",
                **out,
                "endpoint": self.value((*key, "endpoint"), sink.endpoint),
                "path": sink.path,
                "labels": dict(sink.labels),
                "structured_metadata": {metadata_name(p): "{{ " + p + " }}" for p in sink.structured_metadata},
                "encoding": {"codec": "text"},
                "compression": "snappy" if sink.encoding == "protobuf" else "gzip",
                "out_of_order_action": "accept",
            }
            if sink.tenant_id:
                out["tenant_id"] = self.value((*key, "tenant_id"), sink.tenant_id)
            self.http_auth(out, key, sink)
            self.note(f"sinks.{name}: 400 answers are not split per entry (Vector drops the batch, the shipper "
                      "dead-letters only the rejected entries); the cardinality guards have no equivalent")
            self.note(f"sinks.{name}.structured_metadata: an absent field is sent empty instead of left out")
        elif isinstance(sink, ElasticsearchSinkConfig):
            raw_line = False
            es_id = True
            templates = [sink.index] if vrl.template_fields(sink.index) else []
            out = {
                "type": "elasticsearch",
                **out,
                "endpoints": [self.value((*key, "endpoint"), sink.endpoint)],
                "api_version": "auto",
                "mode": "bulk",
                "bulk": {"action": "create", "index": sink.index},
                "id_key": "ecvi_id",
                "request_retry_partial": True,
                "compression": sink.compression,
            }
            if sink.mode == "data_stream":
                self.note(f"sinks.{name}.mode data_stream: written as bulk 'create' into the data stream "
                          f"{sink.index!r} (Vector's data_stream mode composes type-dataset-namespace)")
            if sink.install_template:
                self.note(f"sinks.{name}.install_template: Vector installs no index template; install "
                          "deploy/elasticsearch/index-template.json and ilm-policy.json first")
            if sink.api_key is not None:
                raw_key = self.value((*key, "api_key"), None)
                if raw_key is None:
                    secret = sink.api_key.get_secret_value()
                    if ":" in secret:
                        secret = base64.b64encode(secret.encode()).decode()
                    raw_key = secret
                    self.note(f"sinks.{name}.api_key: written in clear into the Vector config; prefer an environment "
                              "variable reference")
                out["request"]["headers"] = {"Authorization": f"ApiKey {raw_key}"}
            self.http_auth(out, key, sink)
        elif isinstance(sink, CloudWatchSinkConfig):
            templates = [sink.group, sink.stream]
            out = {
                "type": "aws_cloudwatch_logs",
                **out,
                "region": self.value((*key, "region"), sink.region),
                "group_name": sink.group,
                "stream_name": sink.stream,
                "create_missing_group": sink.create_missing,
                "create_missing_stream": sink.create_missing,
                "encoding": {"codec": "text"},
            }
            if sink.endpoint:
                out["endpoint"] = self.value((*key, "endpoint"), sink.endpoint)
            if sink.retention_days:
                out["retention"] = {"enabled": True, "days": sink.retention_days}
            if sink.profile:
                out["auth"] = {"profile": self.value((*key, "profile"), sink.profile)}
            self.note(f"sinks.{name}.max_event_bytes: Vector does not truncate oversized events")
        elif isinstance(sink, FileSinkConfig):
            raw_line = sink.encoding == "raw"
            out = {
                "type": "file",
                **out,
                "path": sink.path,
                "encoding": {"codec": "text" if raw_line else "json"},
            }
            del out["batch"], out["request"]
            if sink.fsync:
                self.note(f"sinks.{name}.fsync: the Vector file sink has no fsync option")
        if self.unconfined(templates if not isinstance(sink, FileSinkConfig) else [sink.path]):
            out["dangerously_allow_unconfined_template_resolution"] = True
        fields = sorted({f for t in templates for f in vrl.template_fields(t)})
        prep = f"{name}_prepare"
        self.transforms[prep] = {
            "type": "remap",
            "inputs": self.inputs(sink.inputs),
            "source": vrl.sink_program(raw_line, fields, es_id=es_id),
        }
        out["inputs"] = [prep]
        self.sinks[name] = out

    def http_auth(self, out: dict[str, Any], key: tuple[str, ...],
                  sink: LokiSinkConfig | ElasticsearchSinkConfig) -> None:
        if sink.auth is not None:
            a = sink.auth
            auth_key = (*key, "auth")
            if a.strategy == "basic":
                out["auth"] = {
                    "strategy": "basic",
                    "user": self.value((*auth_key, "user"), a.user or ""),
                    "password": self.value((*auth_key, "password"),
                                           a.password.get_secret_value() if a.password else ""),
                }
            else:
                out["auth"] = {"strategy": "bearer",
                               "token": self.value((*auth_key, "token"), a.token.get_secret_value() if a.token else "")}
        if sink.tls is not None:
            t = sink.tls
            tls: dict[str, Any] = {"verify_certificate": t.verify, "verify_hostname": t.verify}
            for opt in ("ca_file", "crt_file", "key_file"):
                if getattr(t, opt):
                    tls[opt] = getattr(t, opt)
            out["tls"] = tls

    # -- the whole config ----------------------------------------------------------------------------
    def render(self) -> Rendered:
        for name, src in self.cfg.sources.items():
            self.source(name, src)
        self.transforms_in_order()
        for name, sink in self.cfg.sinks.items():
            self.sink(name, sink)
        host, _, port = self.cfg.api.address.rpartition(":")
        config: dict[str, Any] = {
            "data_dir": self.cfg.data_dir,
            "acknowledgements": {"enabled": True},
            "api": {"enabled": self.cfg.api.enabled, "address": self.cfg.api.address},
            "sources": {
                **self.sources,
                "vector_metrics": {"type": "internal_metrics"},
            },
            "transforms": self.transforms,
            "sinks": {
                **self.sinks,
                "prometheus": {"type": "prometheus_exporter", "inputs": ["vector_metrics"],
                               "address": f"{host}:{int(port) + 1}"},
            },
        }
        if self.rounded:
            self.note(f"sinks {', '.join(self.rounded)}: request times are whole seconds in Vector (rounded up) and "
                      "its backoff follows the Fibonacci sequence rather than doubling")
        if self.raised:
            self.note(f"sinks {', '.join(self.raised)}: buffer.max_bytes raised to {MIN_DISK_BUFFER_BYTES}, "
                      "Vector's smallest disk buffer")
        self.note(f"api: Vector's API (/health) is on {self.cfg.api.address}, its Prometheus metrics on port "
                  f"{int(port) + 1} (vector_* names, not ecvi_shipper_*)")
        self.note("dead letters: Vector has no dead-letter file; permanently refused events are dropped and counted")
        if self.tests:
            config["tests"] = self.tests
        rendered = Rendered(config, self.notes, self.env_refs)
        if self.env_refs:
            rendered.config = _escape_dollars(rendered.config)
        return rendered


def _pods_glob(pattern: str, exclude: bool = False) -> str | None:
    """A /var/log/containers glob as a kubernetes_logs glob over /var/log/pods paths."""
    if pattern.startswith("/var/log/pods/"):
        return pattern
    name = pattern.removeprefix("/var/log/containers/").removesuffix(".log")
    parts = name.split("_")
    if len(parts) == 3:
        pod, ns, container = parts
        container = container.rsplit("-", 1)[0] if "-" in container else container
        return f"/var/log/pods/{ns}_{pod}_*/{container or '*'}/*.log"
    if exclude:
        return None
    return "/var/log/pods/**/*.log"


def _escape_dollars(node: Any) -> Any:
    """With interpolation on, Vector reads '$' as the start of a variable: double every '$'
    except in the ${VAR} references kept on purpose."""
    if isinstance(node, dict):
        return {k: _escape_dollars(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_escape_dollars(v) for v in node]
    if isinstance(node, str) and "$" in node:
        parts = _ENV_REF.split(node)
        refs = _ENV_REF.findall(node)
        out = parts[0].replace("$", "$$")
        for ref, rest in zip(refs, parts[1:], strict=True):
            out += ref + rest.replace("$", "$$")
        return out
    return node


def _parse_test(transform: str, kind: str, fmt: str) -> dict[str, Any]:
    import json

    line = json.dumps(SAMPLE_RECORD)
    fields: dict[str, Any]
    conditions = [
        'assert_eq!(.level, "ERROR")',
        'assert_eq!(.request_id, "9f1c2d3e4b5a69788796a5b4c3d2e1f0")',
        'assert_eq!(.message, "Verification failed")',
        "assert!(is_timestamp(.timestamp))",
    ]
    if kind == "fluent":
        fields = {**SAMPLE_RECORD, "tag": "ecvi.backend"}
    elif kind == "kubernetes_logs":
        fields = {"message": line, "file": "/var/log/pods/ecvi_api-7d9f8_uid/api/0.log",
                  "kubernetes": {"pod_namespace": "ecvi", "pod_name": "api-7d9f8", "container_name": "api"}}
        conditions.append('assert_eq!(.kubernetes.namespace, "ecvi")')
    else:
        wrapped = {
            "cri": f"2025-01-01T00:00:01.000000000Z stdout F {line}",
            "docker": json.dumps({"log": line + "\n", "stream": "stdout", "time": "2025-01-01T00:00:01Z"}),
        }.get(fmt, line)
        fields = {"message": wrapped, "file": SAMPLE_CONTAINER_FILE, "offset": 4096}
        if fmt in ("cri", "docker"):
            conditions += ['assert_eq!(.kubernetes.namespace, "ecvi")', 'assert_eq!(.kubernetes.pod_name, "api-7d9f8")']
    return {
        "name": f"{transform} parses an ecvi-logs record",
        "inputs": [{"insert_at": transform, "type": "vrl", "source": ". = " + vrl.literal(fields)}],
        "outputs": [{"extract_from": transform, "conditions": [{"type": "vrl", "source": "\n".join(conditions)}]}],
    }


def _redact_test(transform: str) -> dict[str, Any]:
    return {
        "name": f"{transform} redacts secrets",
        "inputs": [{"insert_at": transform, "type": "vrl", "source": ". = " + vrl.literal({
            "message": "login", "password": "hunter2", "headers": {"Authorization": "Bearer abcdefgh12345678"},
            "note": "token in https://user:s3cret@example.com/x",
        })}],
        "outputs": [{"extract_from": transform, "conditions": [{"type": "vrl", "source": "\n".join([
            'assert_eq!(.password, "[REDACTED]")',
            'assert_eq!(.headers.Authorization, "[REDACTED]")',
            'assert!(!contains(string!(.note), "s3cret"))',
            'assert_eq!(.message, "login")',
        ])}]}],
    }


def render_vector(cfg: ShipperConfig, raw: dict[str, Any] | None = None,
                  options: RenderOptions | None = None) -> Rendered:
    """The Vector config equivalent to ``cfg``. ``raw`` is the config file parsed without
    interpolation: string values holding ``${VAR}`` are kept as references for Vector to resolve."""
    return _Renderer(cfg, raw, options or RenderOptions()).render()
