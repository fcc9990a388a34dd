"""The ``elasticsearch`` sink: bulk ``create`` with deterministic ids, after installing the template."""

from __future__ import annotations

import asyncio
import logging

import httpx
import orjson

from shipper.event import Event
from shipper.sinks._common.base import Sink
from shipper.sinks._common.http import build_client
from shipper.sinks._common.outcome import PermanentSinkError, SendOutcome, TransientSinkError
from shipper.sinks._common.retry import parse_retry_after
from shipper.sinks.elasticsearch.config import ElasticsearchSinkConfig
from shipper.sinks.elasticsearch.encoder import BulkEncoder
from shipper.sinks.elasticsearch.service import BulkService, error_text
from shipper.sinks.elasticsearch.template import index_template

log = logging.getLogger("shipper.sinks.elasticsearch")

#: Bytes an event adds to the request beyond its raw line: action line, @timestamp, kubernetes.
_EVENT_OVERHEAD = 256


class ElasticsearchSink(Sink[ElasticsearchSinkConfig]):
    """Writes each batch with one ``_bulk`` request of ``create`` actions (``_id`` = ``event.id``).

    A resent event meets its own id and is answered 409, which counts as delivered: retries and
    replays never duplicate (in data_stream mode: within the current backing index). Nothing is
    written before the index template is in place, so the first index of the day gets its mappings.
    ``transport`` replaces the network (tests: ``httpx.MockTransport``).
    """

    def __init__(self, name: str, config: ElasticsearchSinkConfig, data_dir: str, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(name, config, data_dir)
        self._transport = transport
        self.encoder = BulkEncoder(config.index, data_stream=config.mode == "data_stream",
                                   max_indices=config.max_indices,
                                   max_indices_per_pod=config.max_indices_per_pod, sink=name)
        self.template_name = config.effective_template_name
        self.template = index_template(
            config.index_pattern, data_stream=config.mode == "data_stream", priority=config.template_priority,
            ilm_policy=config.ilm_policy,
        )
        self._template_ready = not config.install_template
        self._template_lock = asyncio.Lock()
        self._client: httpx.AsyncClient | None = None
        self._service: BulkService | None = None
        self._base = config.endpoint.rstrip("/")

    @property
    def duplicates(self) -> int:
        """Creates answered 409 because the document was already there (resends that did no harm)."""
        return self._service.duplicates if self._service else 0

    async def start(self) -> None:
        cfg = self.config
        headers = {"Accept": "application/json", **cfg.auth_headers()}
        self._client = build_client(cfg.auth, cfg.tls, cfg.request.timeout_secs, headers, transport=self._transport)
        self._service = BulkService(self.name, self._client, cfg.endpoint, cfg.compression)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError(f"sink {self.name}: start() was not called")
        return self._client

    async def healthcheck(self) -> None:
        """The cluster answers, is not red, and the index template is installed."""
        client = self._http()
        try:
            health = await client.get(self._base + "/_cluster/health")
            info = await client.get(self._base + "/")
        except httpx.HTTPError as exc:
            raise TransientSinkError(self.name, f"cannot reach {self._base}: {type(exc).__name__}: {exc}"
                                     ) from exc
        status = health.status_code
        if status == 401:
            raise PermanentSinkError(self.name, f"authentication failed: {error_text(health)}")
        if status == 200:
            if orjson.loads(health.content).get("status") == "red":
                raise TransientSinkError(self.name, "cluster health is red (some primary shards unassigned)")
        elif status == 403:
            # A key limited to writing logs may not read cluster health: answering is enough.
            log.info("sink %s: no privilege to read cluster health (%s)", self.name, error_text(health))
        else:
            raise TransientSinkError(
                self.name, f"/_cluster/health answered HTTP {status}: {error_text(health)}")
        if info.status_code == 200:  # informative only: not every distribution or key serves it
            version = orjson.loads(info.content).get("version", {}).get("number", "?")
            log.info("sink %s: Elasticsearch %s at %s", self.name, version, self._base)
        await self.ensure_template()

    async def ensure_template(self) -> None:
        """Install the index template unless an identical one is there (once per process)."""
        if self._template_ready:
            return
        async with self._template_lock:
            if self._template_ready:
                return
            await self._install_template()
            self._template_ready = True

    async def _install_template(self) -> None:
        client = self._http()
        url = f"{self._base}/_index_template/{self.template_name}"
        current = await client.get(url)
        if current.status_code == 200:
            found = orjson.loads(current.content).get("index_templates") or [{}]
            meta = found[0].get("index_template", {}).get("_meta") or {}
            if meta.get("hash") == self.template["_meta"]["hash"]:
                return
        elif current.status_code != 404:
            self._template_error(current)
        put = await client.put(url, content=orjson.dumps(self.template),
                               headers={"Content-Type": "application/json"})
        if put.status_code != 200:
            self._template_error(put)
        log.info("sink %s: installed index template %s for %s", self.name, self.template_name,
                 self.template["index_patterns"])

    def _template_error(self, response: httpx.Response) -> None:
        status = response.status_code
        reason = f"cannot install index template {self.template_name}: HTTP {status}: {error_text(response)}"
        if status == 401:
            raise PermanentSinkError(self.name, reason)
        # Events wait in the buffer rather than land in an index without its mappings.
        hint = " (grant manage_index_templates or set install_template: false)" if status == 403 else ""
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise TransientSinkError(self.name, reason + hint, retry_after)

    async def send(self, events: list[Event]) -> SendOutcome:
        await self.ensure_template()
        if self._service is None:
            raise RuntimeError(f"sink {self.name}: start() was not called")
        batch = self.encoder.encode(events)
        outcome = await self._service.send(batch) if batch.events else SendOutcome()
        outcome.rejected.extend(batch.rejected)
        return outcome

    def event_size(self, event: Event) -> int:
        return len(event.raw) + _EVENT_OVERHEAD

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
