"""VRL (Vector Remap Language) programs equivalent to the shipper's parsing and transforms.

Every event field is typed ``any`` in VRL (Vector runs with ``schema.enabled: false``), so each
conversion is written in its fallible form (``string!``, ``?? default``), and no string literal
holds ``{{``: VRL would read it as a string template.
"""

from __future__ import annotations

import json
import re
from typing import Any

from logging_config import DEFAULT_SECRET_KEYS, DEFAULT_SECRET_WORDS, REDACTED
from shipper.sources.file.kubernetes import CONTAINER_LOG_PATH, POD_LOG_PATH
from shipper.templates import choices, compile_template, has_alternatives
from shipper.transforms import LEVEL_RANKS

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MISSING_VALUE = "unknown"

# The CRI log line: <RFC 3339 time> <stdout|stderr> <F|P> <payload>.
CRI_LINE = r"^(?P<time>\S+) (?P<stream>stdout|stderr) (?P<tag>[FP]) (?P<log>.*)$"
# Credentials inside strings, as logging_config's Redactor finds them (a simplified form: VRL's
# redact() replaces the whole match, so "Bearer <token>" becomes "[REDACTED]").
CREDENTIAL_PATTERNS = (
    r"(?i)\b(?:bearer|basic|digest|token|apikey)[ \t]+[A-Za-z0-9\-._~+/]{8,}=*",
    r"(?i)://[^/\s:@]*:[^/\s@]+@",
    r"(?i)[?&](?:key|sig|signature|x-amz-signature|x-goog-signature|x-amz-credential|x-amz-security-token"
    r"|token|access_token|api_key|apikey|password|secret|client_secret)=[^&#\s\"'<>]+",
)
# Secret only as a whole word of a key (``basic_auth``, ``X-Auth``, ``basicAuth``, ``DB_PWD``), never
# inside ``author`` or ``authority``: the key as written, before it is folded.
WHOLE_WORD_KEYS = "(^|[-_.])(?i:" + "|".join(DEFAULT_SECRET_WORDS) + ")([-_.]|$)|[a-z0-9](?:" + "|".join(
    w.capitalize() + "|" + w.upper() for w in DEFAULT_SECRET_WORDS) + ")([-_.A-Z0-9]|$)"
# Keys that contain a secret word but name none (``tokenizer``).
HARMLESS_KEYS = "tokeniz"


def string(value: str) -> str:
    """A VRL string literal (``{{`` split so that it is not read as a template)."""
    body = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    body = body.replace("\t", "\\t").replace("{{", '{" + "{')
    return f'"{body}"'


def regex(pattern: str) -> str:
    """A VRL regex literal."""
    return "r'" + pattern.replace("'", "\\'") + "'"


def path(field_path: str, root: str = ".") -> str:
    """``kubernetes.pod_name`` as a VRL path: ``.kubernetes.pod_name`` (odd segments quoted)."""
    return _segments(field_path.split("."), root)


def _segments(segments: list[str], root: str = ".") -> str:
    parts = [p if _IDENT.match(p) else json.dumps(p) for p in segments]
    return root + ".".join(parts) if root == "." else root + "." + ".".join(parts)


def path_candidates(field_path: str) -> list[str]:
    """The VRL paths a template path may name, in the order tried: as split, then with the rest joined
    into one key at each depth (``.kubernetes.pod_labels."app.kubernetes.io/name"``), as the shipper
    finds label keys holding dots (it also tries shorter joins, which these do not cover)."""
    parts = field_path.split(".")
    return [path(field_path), *(_segments([*parts[:i], ".".join(parts[i:])]) for i in range(1, len(parts) - 1))]


def needs_computing(field: str) -> bool:
    """Whether Vector's own ``{{ path }}`` cannot read this template field (alternatives, or a path that
    may hold a key with dots): the remap before the sink computes it into a field of its own."""
    return has_alternatives(field) or field.count(".") >= 2


def field_value(field: str, missing: str = "") -> str:
    """A template field as a VRL string expression: the first of its paths (and alternatives) that is
    not empty, else ``missing``."""
    exprs: list[str] = []
    for c in choices(field):
        if c.path is None:
            exprs.append(string(c.literal))
        else:
            exprs.extend(f"to_string({p}) ?? \"\"" for p in path_candidates(".".join(c.path)))
    if len(exprs) == 1 and not has_alternatives(field):
        return f"(to_string({path(field)}) ?? {string(missing)})"
    steps = [f"ecvi_value = {exprs[0]}"]
    steps += [f"if ecvi_value == \"\" {{ ecvi_value = {e} }}" for e in exprs[1:]]
    if missing:
        steps.append(f"if ecvi_value == \"\" {{ ecvi_value = {string(missing)} }}")
    return "{ " + "; ".join([*steps, "ecvi_value"]) + " }"


def literal(value: Any) -> str:
    """A JSON-like value as a VRL literal."""
    if isinstance(value, str):
        return string(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{string(str(k))}: {literal(v)}" for k, v in value.items()) + "}"
    return string(str(value))


def template(value: str, missing: str = "") -> str:
    """A shipper ``{{ field }}`` template as a VRL string expression (``missing`` for absent fields)."""
    literals, fields = compile_template(value)
    if not fields:
        return string(value)
    parts: list[str] = []
    for i, field in enumerate(fields):
        if literals[i]:
            parts.append(string(literals[i]))
        parts.append(field_value(field, missing))
    if literals[-1]:
        parts.append(string(literals[-1]))
    return " + ".join(parts)


def template_fields(value: str) -> list[str]:
    """The fields a template reads (paths, or paths with ``| default(...)`` alternatives)."""
    return list(compile_template(value)[1])


def vector_template(value: str, computed: dict[str, str]) -> str:
    """``value`` as a Vector template: the fields in ``computed`` read the field computed for them."""
    literals, fields = compile_template(value)
    if not any(f in computed for f in fields):
        return value
    out = [literals[0]]
    for field, literal in zip(fields, literals[1:], strict=True):
        out.append("{{ " + computed.get(field, field) + " }}")
        out.append(literal)
    return "".join(out)


def parse_program(source_name: str, kind: str, fmt: str, kubernetes_metadata: bool,
                  multiline: bool = False) -> str:
    """The remap after a source: unwrap the container runtime line, parse our JSON record into the
    event's root, keep the raw payload in ``%ecvi_raw`` and a deterministic id in ``%ecvi_id``.

    ``kind`` is ``file`` (Vector's file source: ``.message``, ``.file``, ``.offset``),
    ``kubernetes_logs`` (already unwrapped, metadata under ``.kubernetes``) or ``fluent``.
    ``multiline``: a message that is not a JSON object also gets ``.ecvi_multiline`` (its file,
    stream and id), which the grouping after this step reads and removes
    (:mod:`pipelines.vector.multiline`).
    """
    lines = [f"# {source_name}: {kind} source, {fmt} lines"]
    if kind == "fluent":
        lines += [
            "del(.tag)",
            "del(.source_type)",
            "del(.host)",
            "event_time = timestamp(del(.timestamp)) ?? now()",
            "record = .",
            "payload = encode_json(record)",
            "k8s = {}",
            "id_basis = to_string(event_time) + payload",
        ]
    else:
        lines.append("line = string(.message) ?? \"\"")
        lines.append("event_time = now()")
        if kind == "file" and fmt == "cri":
            lines += [
                "payload = line",
                *(["stream = \"\""] if multiline else []),
                f"cri, err = parse_regex(line, {regex(CRI_LINE)})",
                "if err == null {",
                "  payload = string(cri.log) ?? line",
                *(["  stream = string(cri.stream) ?? \"\""] if multiline else []),
                "  event_time = parse_timestamp(string(cri.time) ?? \"\", format: \"%+\") ?? now()",
                "}",
            ]
        elif kind == "file" and fmt == "docker":
            lines += [
                "wrapper = object(parse_json(line) ?? {}) ?? {}",
                "# Only the line end goes: a traceback's indentation is part of the message.",
                "payload = string(wrapper.log) ?? line",
                "if ends_with(payload, \"\\n\") {",
                "  payload = slice!(payload, 0, -1)",
                "  if ends_with(payload, \"\\r\") { payload = slice!(payload, 0, -1) }",
                "}",
                "event_time = parse_timestamp(string(wrapper.time) ?? \"\", format: \"%+\") ?? now()",
            ]
            if multiline:
                lines.append("stream = string(wrapper.stream) ?? \"\"")
        else:
            lines.append("payload = line")
            if kind == "kubernetes_logs":
                lines.append("event_time = timestamp(.timestamp) ?? now()")
                if multiline:
                    lines += ["stream = string(.stream) ?? \"\"", "file = string(.file) ?? \"\""]
        if kind == "kubernetes_logs":
            lines += [
                "# The shipper's names for kubernetes_logs' fields; absent ones left out.",
                "k8s = compact({",
                "  \"namespace\": .kubernetes.pod_namespace,",
                "  \"pod_name\": .kubernetes.pod_name,",
                "  \"container_name\": .kubernetes.container_name,",
                "  \"container_id\": .kubernetes.container_id,",
                "  \"pod_uid\": .kubernetes.pod_uid,",
                "  \"pod_labels\": .kubernetes.pod_labels,",
                "  \"pod_annotations\": .kubernetes.pod_annotations,",
                "  \"namespace_labels\": .kubernetes.namespace_labels,",
                "  \"node_name\": .kubernetes.pod_node_name,",
                "  \"container_image\": .kubernetes.container_image,",
                "}, recursive: false, object: false)",
                "owner = split(string(.kubernetes.pod_owner) ?? \"\", \"/\", limit: 2)",
                "if length(owner) == 2 {",
                "  owner_kind = string!(owner[0])",
                "  owner_name = string!(owner[1])",
                "  # A ReplicaSet named <deployment>-<pod-template-hash> is the Deployment's.",
                "  hash = string(.kubernetes.pod_labels.\"pod-template-hash\") ?? \"\"",
                "  if owner_kind == \"ReplicaSet\" && hash != \"\" && ends_with(owner_name, \"-\" + hash) {",
                "    owner_kind = \"Deployment\"",
                "    owner_name = slice!(owner_name, 0, length(owner_name) - length(hash) - 1)",
                "  }",
                "  k8s.owner_kind = owner_kind",
                "  k8s.owner_name = owner_name",
                "}",
                "id_basis = (to_string(.file) ?? \"\") + \":\" + to_string(event_time) + payload",
            ]
        else:
            lines.append("file = string(.file) ?? \"\"")
            lines.append("k8s = {}")
            if kubernetes_metadata:
                lines += [
                    f"found, err = parse_regex(file, {regex(CONTAINER_LOG_PATH.pattern)})",
                    "if err == null {",
                    "  k8s = {\"namespace\": found.ns, \"pod_name\": found.pod, "
                    "\"container_name\": found.container, \"container_id\": found.id}",
                    "} else {",
                    f"  found, err = parse_regex(file, {regex(POD_LOG_PATH.pattern)})",
                    "  if err == null {",
                    "    k8s = {\"namespace\": found.ns, \"pod_name\": found.pod, "
                    "\"container_name\": found.container, \"pod_uid\": found.uid}",
                    "  }",
                    "}",
                ]
            lines.append("id_basis = file + \":\" + (to_string(.offset) ?? \"\")")
        lines += [
            "record = {\"message\": payload}",
            *(["grouped = true"] if multiline else []),
            "if starts_with(payload, \"{\") {",
            "  parsed, err = parse_json(payload)",
            "  if err == null && is_object(parsed) {"
            + (" record = object!(parsed); grouped = false }" if multiline else " record = object!(parsed) }"),
            "}",
        ]
    lines += [
        "# Our records carry their own time (RFC 3339, UTC, milliseconds).",
        "event_time = parse_timestamp(string(record.timestamp) ?? \"\", format: \"%+\") ?? event_time",
        ". = record",
        ".timestamp = event_time",
        "if length(k8s) > 0 {",
        "  own = object(.kubernetes) ?? {}",
        "  .kubernetes = merge(own, k8s)",
        "}",
        "%ecvi_raw = payload",
        f"%ecvi_source = {string(source_name)}",
        "%ecvi_id = slice!(sha2(id_basis, variant: \"SHA-256\"), 0, 32)",
    ]
    if multiline:
        lines += [
            "# Text is grouped per file and stream; a stream other than stdout or stderr shares one group.",
            "if grouped {",
            "  if stream != \"stdout\" && stream != \"stderr\" { stream = \"\" }",
            "  .ecvi_multiline = {\"file\": file, \"stream\": stream, \"id\": %ecvi_id}",
            "}",
        ]
    return "\n".join(lines) + "\n"


def redact_program(extra_keys: list[str]) -> str:
    """Secret keys at any depth of objects become ``[REDACTED]``, credentials inside strings too;
    the raw line is re-encoded from the redacted record when anything changed (as the shipper does).
    """
    words = sorted({k.lower().replace("-", "").replace("_", "") for k in (*DEFAULT_SECRET_KEYS, *extra_keys) if k})
    key_re = "|".join(re.escape(w) for w in words)
    filters = ", ".join(regex(p) for p in CREDENTIAL_PATTERNS)
    return "\n".join([
        "# Redact secret keys (any depth; compared lower-cased without '-' and '_') and credentials.",
        "before = .",
        "out = {}",
        "for_each(flatten(.)) -> |key, value| {",
        "  segments = split(key, \".\")",
        "  name = string(segments[-1]) ?? key",
        "  leaf = downcase(replace(replace(name, \"-\", \"\"), \"_\", \"\"))",
        f"  if (match(leaf, {regex(key_re)}) && !match(leaf, {regex(HARMLESS_KEYS)}))"
        f" || match(name, {regex(WHOLE_WORD_KEYS)}) {{",
        f"    value = {string(REDACTED)}",
        "  } else if is_string(value) {",
        f"    value = redact(string!(value), filters: [{filters}])",
        "  }",
        "  out = set!(out, segments, value)",
        "}",
        ". = out",
        "if . != before {",
        "  record = .",
        "  del(record.timestamp)",
        "  del(record.kubernetes)",
        "  %ecvi_raw = encode_json(record)",
        "}",
    ]) + "\n"


def filter_condition(min_level: str | None, match: dict[str, str]) -> str:
    """A VRL condition keeping what the shipper's ``filter`` transform keeps."""
    parts: list[str] = []
    if min_level:
        floor = LEVEL_RANKS[min_level]
        allowed = sorted(name for name, rank in LEVEL_RANKS.items() if rank >= floor)
        # A missing or unknown level counts as INFO, as in the shipper.
        level = "upcase(to_string(.level) ?? \"INFO\")"
        known = literal(sorted(LEVEL_RANKS))
        rank_ok = f"includes({literal(allowed)}, {level})"
        if LEVEL_RANKS["INFO"] >= floor:
            rank_ok = f"({rank_ok} || !includes({known}, {level}))"
        parts.append(rank_ok)
    for field, want in match.items():
        parts.append(f"(to_string({path(field)}) ?? \"None\") == {string(want)}")
    return " && ".join(parts) if parts else "true"


def add_fields_program(fields: dict[str, Any], overwrite: bool) -> str:
    """Set fields; string values are templates over the event (absent fields render empty)."""
    lines = []
    for name, value in fields.items():
        expr = template(value) if isinstance(value, str) else literal(value)
        target = path(name)
        if overwrite:
            lines.append(f"{target} = {expr}")
        else:
            lines.append(f"if !exists({target}) {{ {target} = {expr} }}")
    return "\n".join(lines) + "\n"


def computed_name(index: int) -> str:
    """The event field the remap before a sink computes the ``index``-th field of :func:`needs_computing` into."""
    return f"ecvi_template_{index}"


def sink_program(raw_line: bool, template_paths: list[str], es_id: bool = False,
                 computed: dict[str, str] | None = None) -> str:
    """The last remap before a sink: absent template fields as ``unknown`` (the shipper's
    rendering), fields Vector cannot read computed into the fields ``computed`` names, the raw
    payload as ``.message`` for sinks that send the line as written, and the deterministic document
    id for Elasticsearch."""
    lines = []
    computed = computed or {}
    for field in template_paths:
        if field in computed:
            lines.append(f".{computed[field]} = {field_value(field, MISSING_VALUE)}")
            continue
        target = path(field)
        lines.append(f"if !exists({target}) || {target} == \"\" {{ {target} = {string(MISSING_VALUE)} }}")
    if raw_line:
        lines.append("raw = string(%ecvi_raw) ?? \"\"")
        lines.append("if raw != \"\" { .message = raw }")
    if es_id:
        lines.append(".\"@timestamp\" = .timestamp")
        lines.append(".ecvi_id = %ecvi_id")
    return "\n".join(lines) + "\n" if lines else ".\n"
