"""The renderer: walks a shipper config and assembles the Vector config and its notes.

Sources and sinks are rendered by the functions their tables name (:mod:`.sources`, :mod:`.sinks`);
transforms, the ``<sink>_prepare`` remaps, the API and the notes common to the whole config are here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from pipelines import vrl
from pipelines.vector.samples import parse_test, redact_test
from pipelines.vector.sinks import MIN_DISK_BUFFER_BYTES, NOT_RENDERED, SINK_RENDERERS
from pipelines.vector.sources import SOURCE_RENDERERS
from shipper.config.model import AnySinkConfig, AnySourceConfig, AnyTransformConfig, ShipperConfig
from shipper.sinks.registry import config_tag
from shipper.transforms.config import FilterConfig, RedactConfig

_ENV_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-[^}]*)?\}")


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
        header.append("# Check it with `vector validate --no-environment --dangerously-allow-env-var-interpolation "
                      "FILE` and `vector test --dangerously-allow-env-var-interpolation FILE` (the tests: section).")
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


class Renderer:
    """The state of one rendering; the source and sink functions add their components to it."""

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
        # Shipper component name -> the Vector outputs carrying its events (two after a grouping).
        self.outputs: dict[str, list[str]] = {}
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
        return [out for n in names for out in self.outputs[n]]

    def unconfined(self, templates: list[str]) -> bool:
        """True when a template starts with an event field (Vector >= 0.57 confinement)."""
        if self.opt.vector_version < (0, 57):
            return False
        return any(vrl.template_fields(t) and t.lstrip().startswith("{{") for t in templates)

    # -- sources -------------------------------------------------------------------------------------
    def source(self, name: str, src: AnySourceConfig) -> None:
        SOURCE_RENDERERS[type(src)](self, name, src)

    def parse(self, name: str, kind: str, fmt: str, kubernetes_metadata: bool, multiline: bool = False) -> None:
        """The remap after source ``name`` that parses its lines as the shipper does (``multiline``:
        marking text messages for the grouping after it, :mod:`.multiline`)."""
        out = f"{name}_parse"
        self.transforms[out] = {
            "type": "remap",
            "inputs": [name],
            "drop_on_error": False,
            "source": vrl.parse_program(name, kind, fmt, kubernetes_metadata, multiline),
        }
        self.outputs[name] = [out]
        if self.opt.with_tests:
            self.tests.append(parse_test(out, kind, fmt))

    # -- transforms ----------------------------------------------------------------------------------
    def transform(self, name: str, t: AnyTransformConfig) -> None:
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
                self.tests.append(redact_test(name))
        else:
            self.transforms[name] = {"type": "remap", "inputs": inputs,
                                     "source": vrl.add_fields_program(t.fields, t.overwrite)}
        self.outputs[name] = [name]

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
    def sink(self, name: str, sink: AnySinkConfig) -> None:
        """The Vector sink and its ``<name>_prepare`` remap, or a note saying why there is none."""
        render = SINK_RENDERERS.get(type(sink))
        if render is None:
            why = NOT_RENDERED.get(type(sink), "Vector has no equivalent")
            self.note(f"sinks.{name}: the {config_tag(type(sink))} sink is not rendered: {why}")
            return
        r = render(self, name, sink)
        out = r.component
        if r.templates and self.unconfined(r.templates):
            out["dangerously_allow_unconfined_template_resolution"] = True
        fields = sorted({f for t in r.templates for f in vrl.template_fields(t)})
        # Alternatives and label keys with dots: computed by the remap, read by the sink, not sent.
        computed = {f: vrl.computed_name(i) for i, f in enumerate(f for f in fields if vrl.needs_computing(f))}
        if computed:
            out = self._retemplate(out, computed)
            out.setdefault("encoding", {})["except_fields"] = sorted(computed.values())
        prep = f"{name}_prepare"
        self.transforms[prep] = {
            "type": "remap",
            "inputs": self.inputs(sink.inputs),
            "source": vrl.sink_program(r.raw_line, fields, es_id=r.es_id, computed=computed),
        }
        out["inputs"] = [prep]
        self.sinks[name] = out

    def _retemplate(self, node: Any, computed: dict[str, str]) -> Any:
        if isinstance(node, dict):
            return {k: self._retemplate(v, computed) for k, v in node.items()}
        if isinstance(node, str):
            return vrl.vector_template(node, computed)
        return node

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
            rendered.config = escape_dollars(rendered.config)
        return rendered


def escape_dollars(node: Any) -> Any:
    """With interpolation on, Vector reads '$' as the start of a variable: double every '$'
    except in the ${VAR} references kept on purpose."""
    if isinstance(node, dict):
        return {k: escape_dollars(v) for k, v in node.items()}
    if isinstance(node, list):
        return [escape_dollars(v) for v in node]
    if isinstance(node, str) and "$" in node:
        parts = _ENV_REF.split(node)
        refs = _ENV_REF.findall(node)
        out = parts[0].replace("$", "$$")
        for ref, rest in zip(refs, parts[1:], strict=True):
            out += ref + rest.replace("$", "$$")
        return out
    return node


def render_vector(cfg: ShipperConfig, raw: dict[str, Any] | None = None,
                  options: RenderOptions | None = None) -> Rendered:
    """The Vector config equivalent to ``cfg``. ``raw`` is the config file parsed without
    interpolation: string values holding ``${VAR}`` are kept as references for Vector to resolve."""
    return Renderer(cfg, raw, options or RenderOptions()).render()
