"""Options of the ``file`` source."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: A pod or namespace annotated ``"true"`` with this is not shipped (with ``kubernetes_api``).
EXCLUDE_ANNOTATION = "ecvi-logs.io/exclude"
#: A pod's containers listed in this annotation (``"a,b"``) are not shipped (with ``kubernetes_api``).
EXCLUDE_CONTAINERS_ANNOTATION = "ecvi-logs.io/exclude-containers"


class MultilineConfig(BaseModel):
    """Group lines of ``text`` logs into one event (Python tracebacks by default)."""

    model_config = ConfigDict(extra="forbid")
    start_pattern: str | None = Field(
        None, description="Regex a line matches when it starts a new event; unset: Python tracebacks."
    )
    timeout_ms: int = Field(1000, ge=10, description="Flush a group after this long without a new line.")
    max_lines: int = Field(500, ge=1, description="Most lines in one group.")

    @field_validator("start_pattern")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return v


class KubernetesApiConfig(BaseModel):
    """Pod and namespace metadata from the Kubernetes API (list and watch of this node's pods).

    A pod or namespace annotated ``ecvi-logs.io/exclude: "true"``, or a container named in its pod's
    ``ecvi-logs.io/exclude-containers: "a,b"``, is not shipped. Pods the API does not know are shipped
    with path metadata and ``kubernetes_enrichment: missing``.
    """

    model_config = ConfigDict(extra="forbid")
    node_name: str = Field(
        ..., min_length=1,
        description="This node's name (only its pods are watched); the DaemonSet sets NODE_NAME from spec.nodeName.",
    )
    kubeconfig: str | None = Field(
        None, description="Path of a kubeconfig file; unset: the in-cluster service account."
    )
    pod_annotations: list[str] = Field(
        default_factory=lambda: ["*"], description="Glob patterns of pod annotation keys attached to events."
    )
    exclude_pod_annotations: list[str] = Field(
        default_factory=lambda: ["kubectl.kubernetes.io/last-applied-configuration"],
        description="Glob patterns of pod annotation keys never attached (wins over pod_annotations).",
    )
    delete_grace_secs: float = Field(
        60.0, ge=0, description="A deleted pod's metadata is kept this long, for its files' last lines."
    )
    max_pods: int = Field(10_000, ge=1, description="Most pods (of this node) and namespaces kept in memory.")

    @field_validator("node_name")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v


class FileSourceConfig(BaseModel):
    """Tail files matched by globs, with checkpoints that survive restarts and rotation."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["file"]
    include: list[str] = Field(
        ..., min_length=1,
        description="Glob patterns of files to read. Only regular files are read (links to them are followed); "
        "other matches are skipped with a warning. '**' follows directory links but walks each directory once.",
    )
    exclude: list[str] = Field(default_factory=list, description="Glob patterns of files to skip.")
    format: Literal["cri", "docker", "json", "text"] = Field(
        "cri", description="cri/docker: container runtime wrappers; json: one object a line; text."
    )
    read_from: Literal["beginning", "end"] = Field(
        "beginning", description="Where to start in a file seen for the first time."
    )
    max_line_bytes: int = Field(
        1_048_576, ge=256, description="Longer lines are truncated to this and flagged 'truncated'."
    )
    glob_interval_secs: float = Field(1.0, gt=0, description="How often to look for new files.")
    poll_interval_secs: float = Field(0.25, gt=0, description="How often to check idle files for data.")
    rotate_wait_secs: float = Field(
        10.0, ge=0, description="Keep reading a rotated-away file this long after its last growth."
    )
    read_chunk_bytes: int = Field(256 * 1024, ge=4096, description="Bytes read per system call.")
    batch_events: int = Field(2000, ge=1, description="Events handed downstream at once.")
    multiline: MultilineConfig | None = Field(
        None,
        description="Line grouping (default rule: Python tracebacks). Format text: always. cri/docker: when set, "
        "applied to non-JSON messages after partial-line reassembly, per stream; JSON records are never merged.",
    )
    kubernetes_metadata: bool = Field(True, description="Take namespace/pod/container from the path.")
    kubernetes_api: KubernetesApiConfig | None = Field(
        None,
        description="Add pod and namespace metadata from the Kubernetes API to events of kubelet log files, and "
        "honour the exclusion annotations; unset: path metadata only.",
    )

    @model_validator(mode="after")
    def _api_needs_path(self) -> FileSourceConfig:
        if self.kubernetes_api is not None and not self.kubernetes_metadata:
            raise ValueError("kubernetes_api needs kubernetes_metadata: true (a file's pod is found by its path)")
        return self
