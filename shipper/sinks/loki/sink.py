"""The ``loki`` sink: group a batch into streams, push it, map Loki's answer back to events."""

from __future__ import annotations

import httpx

from shipper.event import Event
from shipper.lines import LineBatch, flatten
from shipper.sinks._common.base import Sink
from shipper.sinks._common.halving import RequestTooLarge, halves, send_halving
from shipper.sinks._common.http import build_client, post_body
from shipper.sinks._common.outcome import SendOutcome
from shipper.sinks.loki.columns import LineViews, template_fields
from shipper.sinks.loki.config import LokiSinkConfig
from shipper.sinks.loki.direct import LinePush
from shipper.sinks.loki.encoder import ProtobufEncoder, PushRequest, build_encoder
from shipper.sinks.loki.labels import CardinalityGuard, LabelRenderer, Stream
from shipper.sinks.loki.service import check_ready, classify_push_response

# Framing and timestamp of one entry, and a typical structured metadata pair, in bytes.
_ENTRY_OVERHEAD = 24
_METADATA_PAIR = 48


class LokiSink(Sink[LokiSinkConfig]):
    """Pushes batches to Loki's ``/loki/api/v1/push``; one request per ``send``.

    A 413 (request too large) is the one answer handled here rather than by the delivery: the
    batch is halved until it fits (:mod:`shipper.sinks._common.halving`), and an entry that is too
    large on its own is rejected. ``transport`` replaces the network (tests: ``httpx.MockTransport``).
    """

    def __init__(self, name: str, config: LokiSinkConfig, data_dir: str, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(name, config, data_dir)
        self._transport = transport
        self.guard = CardinalityGuard(config.max_label_values, sink=name, max_streams=config.max_streams,
                                      max_values_per_pod=config.max_label_values_per_pod,
                                      max_streams_per_pod=config.max_streams_per_pod)
        self.labels = LabelRenderer(config.labels, self.guard)
        self.encoder = build_encoder(config.encoding, config.structured_metadata)
        self._overhead = _ENTRY_OVERHEAD + _METADATA_PAIR * len(config.structured_metadata)
        label_fields = template_fields(config.labels.values())
        self._views = LineViews(label_fields + list(config.structured_metadata))
        # Protobuf requests are written from the batches' columns; JSON ones from light events.
        self._line_push = (LinePush(label_fields, self._views, self.labels, self.encoder)
                           if isinstance(self.encoder, ProtobufEncoder) and not self._views.per_line_meta else None)
        self._client: httpx.AsyncClient | None = None

    @property
    def label_overflows(self) -> dict[str, int]:
        """Label values replaced by ``__overflow__`` by the cardinality guard, per label."""
        return dict(self.guard.overflowed)

    async def start(self) -> None:
        if self._client is None:
            headers = {"User-Agent": "ecvi-logs-shipper"}
            if self.config.tenant_id:
                headers["X-Scope-OrgID"] = self.config.tenant_id
            self._client = build_client(self.config.auth, self.config.tls,
                                        self.config.request.timeout_secs, headers, transport=self._transport)

    async def healthcheck(self) -> None:
        await self.start()
        assert self._client is not None
        await check_ready(self.name, self._client, self.config.endpoint)

    async def send(self, events: list[Event]) -> SendOutcome:
        await self.start()
        # The request halved is the list of events itself: each half is encoded anew.
        return await send_halving(events, self._push, halves, list, sink=self.name)

    def event_size(self, event: Event) -> int:
        return len(event.raw) + self._overhead

    accepts_lines = True

    def lines_size(self, batch: LineBatch) -> int:
        return len(batch.data) + (self._overhead - 1) * len(batch)

    async def send_lines(self, batches: list[LineBatch]) -> SendOutcome | None:
        """Push line batches, their records read only as far as labels and metadata need
        (:mod:`~shipper.sinks.loki.columns`); an answer that is not a success is read against the
        lines' full events, and a request too large is sent again as events, in halves."""
        await self.start()
        assert self._client is not None
        if self._line_push is not None:
            request, columns = self._line_push.request(batches)
            response = await self._post(request)
            if response.is_success:
                return SendOutcome.ok(len(request.body))
            events = flatten(batches)
            request.streams = [Stream(c.labels, c.pairs, [events[p] for p in c.positions]) for c in columns]
        else:
            views = [v for b in batches for v in self._views.views(b)]
            request = self.encoder.encode(self.labels.group(views))
            response = await self._post(request)
            if response.is_success:
                return SendOutcome.ok(len(request.body))
            events = flatten(batches)
            index = {id(v): i for i, v in enumerate(views)}
            for s in request.streams:
                s.events = [events[index[id(v)]] for v in s.events]
        try:
            return classify_push_response(self.name, self.config.push_url, response, request,
                                          self.encoder.metadata.pairs)
        except RequestTooLarge:
            return await self.send(events)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _push(self, events: list[Event]) -> SendOutcome:
        assert self._client is not None
        request = self.encoder.encode(self.labels.group(events))
        response = await self._post(request)
        return classify_push_response(self.name, self.config.push_url, response, request,
                                      self.encoder.metadata.pairs)

    async def _post(self, request: PushRequest) -> httpx.Response:
        assert self._client is not None
        headers = {"Content-Type": request.content_type}
        if request.content_encoding:
            headers["Content-Encoding"] = request.content_encoding
        return await post_body(self._client, self.config.push_url, request.body, headers)
