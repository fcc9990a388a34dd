"""The top-level config model: ``data_dir``, ``api``, ``sources``, ``transforms``, ``sinks``."""

from __future__ import annotations

import re
from typing import Annotated, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shipper.sinks.registry import AnySinkConfig, config_tag
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.forward.config import ForwardSourceConfig
from shipper.transforms.config import AddFieldsConfig, FilterConfig, RedactConfig

AnySourceConfig = FileSourceConfig | ForwardSourceConfig
AnyTransformConfig = AddFieldsConfig | FilterConfig | RedactConfig
SourceConfig = Annotated[AnySourceConfig, Field(discriminator="type")]
TransformConfig = Annotated[AnyTransformConfig, Field(discriminator="type")]
SinkConfig = Annotated[AnySinkConfig, Field(discriminator="type")]

COMPONENT_TAGS: frozenset[str] = frozenset(
    config_tag(c) for union in (AnySourceConfig, AnyTransformConfig, AnySinkConfig) for c in get_args(union)
)
"""Every ``type`` a source, transform or sink may have (validation errors name the key, not the tag)."""

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


class ApiConfig(BaseModel):
    """The HTTP endpoint for ``/metrics``, ``/health`` and ``/ready``."""

    model_config = ConfigDict(extra="forbid")
    address: str = Field("127.0.0.1:9100", description="host:port to listen on.")
    enabled: bool = Field(True, description="Serve /metrics, /health and /ready on 'address'.")

    @field_validator("address")
    @classmethod
    def _host_port(cls, v: str) -> str:
        m = _ADDRESS.match(v)
        if not m or int(m.group(2)) > 65535:
            raise ValueError("expected host:port, e.g. 127.0.0.1:9100")
        return v


class ShipperConfig(BaseModel):
    """A whole shipper: components wired by their ``inputs``."""

    model_config = ConfigDict(extra="forbid")
    data_dir: str = Field("./var/shipper", description="Checkpoints, buffers and dead letters.")
    api: ApiConfig = Field(default_factory=ApiConfig)
    shutdown_timeout_secs: float = Field(30.0, gt=0, description="Flush budget on SIGTERM.")
    checkpoint_interval_secs: float = Field(1.0, gt=0, description="How often checkpoints are saved.")
    sources: dict[str, SourceConfig] = Field(..., min_length=1)
    transforms: dict[str, TransformConfig] = Field(default_factory=dict)
    sinks: dict[str, SinkConfig] = Field(..., min_length=1)

    def graph_problems(self) -> list[tuple[str, str]]:
        """Names that are reused, inputs that name nothing, cycles, and components that lead nowhere."""
        problems: list[tuple[str, str]] = []
        names: dict[str, str] = {}
        for kind, comps in (("sources", self.sources), ("transforms", self.transforms), ("sinks", self.sinks)):
            for name in comps:
                if not _NAME.match(name):
                    problems.append((f"{kind}.{name}", "name must be letters, digits, '_' or '-'"))
                if name in names:
                    problems.append((f"{kind}.{name}", f"name already used in {names[name]}"))
                names[name] = kind
        upstream = set(self.sources) | set(self.transforms)
        for kind, comps in (("transforms", self.transforms), ("sinks", self.sinks)):
            for name, comp in comps.items():
                for i, inp in enumerate(comp.inputs):
                    if inp not in upstream:
                        problems.append((f"{kind}.{name}.inputs[{i}]", f"no source or transform named {inp!r}"))
        # Cycles among transforms.
        state: dict[str, int] = {}

        def visit(n: str) -> bool:
            if state.get(n) == 1:
                return True
            if state.get(n) == 2 or n not in self.transforms:
                return False
            state[n] = 1
            cyc = any(visit(i) for i in self.transforms[n].inputs)
            state[n] = 2
            return cyc

        for t in self.transforms:
            state.clear()
            if visit(t):
                problems.append((f"transforms.{t}.inputs", "inputs form a cycle"))
        consumed = {i for c in [*self.transforms.values(), *self.sinks.values()] for i in c.inputs}
        for name in upstream - consumed:
            kind = "sources" if name in self.sources else "transforms"
            problems.append((f"{kind}.{name}", "is not an input of any sink or transform"))
        return problems
