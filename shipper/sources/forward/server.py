"""The ``forward`` source: an asyncio TCP server speaking the Fluentd forward protocol v1.

Each connection is read, decoded and delivered in turn, so a slow ``deliver`` (a full buffer)
stops reading from that client and TCP pushes back. Every frame completed by one read is
delivered in one ``deliver`` call; the ``{"ack": chunk}`` replies for those frames are sent only
after it returns. Bad input closes only the connection it came on.

Hostile peers are bounded in number and time: at most ``max_connections`` connections, of which
``max_connections_per_peer`` from one remote IP; with ``shared_key`` a connection holds only a
small PING buffer until its PING passes, within ``handshake_timeout_secs``; afterwards a frame
decoder (a slot of the ``max_buffered_bytes`` budget, a remote IP holding at most a quarter of
them) is taken only while a frame is in progress, and a connection that completes no frame for
``idle_timeout_secs`` (or stalls mid-frame for ``frame_timeout_secs``) is closed. Refusals are
counted by reason and logged at a bounded rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from shipper.event import Event
from shipper.metrics import BYTES_RECEIVED, EVENTS_RECEIVED, FORWARD_CONNECTIONS, INPUT_ERRORS
from shipper.sources.base import Deliver
from shipper.sources.forward.config import ForwardSourceConfig, parse_address
from shipper.sources.forward.errors import (
    AUTH_FAILED,
    CONNECTION_LIMIT,
    FRAME_TIMEOUT,
    HANDSHAKE_TIMEOUT,
    IDLE_TIMEOUT,
    OVERLOADED,
    PEER_LIMIT,
    TRUNCATED,
    ForwardDecodeError,
)
from shipper.sources.forward.handshake import PingReader, answer_ping, encode_helo, new_nonce, refuse_ping
from shipper.sources.forward.protocol import UNPACKER_BUFFER_BYTES, FrameDecoder, decode_message, encode_ack
from shipper.sources.forward.refusals import Refusals

log = logging.getLogger("shipper.sources.forward")

_READ_BYTES = 64 * 1024
# One remote IP may hold at most this fraction of the decoder slots at once.
_PEER_SLOT_SHARE = 4


@dataclass(eq=False, slots=True)
class _Connection:
    task: asyncio.Task[Any]
    peer: str  # host:port, for logs
    host: str  # the remote IP, for the per-peer cap
    in_flight: bool = False
    pending: int = 0  # memory held for an unfinished frame (decoder buffer included)
    has_slot: bool = False  # holds one of the decoder slots of the memory budget


class ForwardSource:
    """Listens on ``config.address`` and hands each batch of received events to ``deliver``."""

    def __init__(self, name: str, config: ForwardSourceConfig, deliver: Deliver) -> None:
        self.name = name
        self.config = config
        self._deliver = deliver
        self.host, self.port = parse_address(config.address)
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._per_host: Counter[str] = Counter()
        self._host_slots: dict[str, asyncio.Semaphore] = {}  # one per remote IP with open connections
        self._refusals = Refusals(name, log)
        self._stopping = False
        self._events_received = EVENTS_RECEIVED.labels(name)
        self._bytes_received = BYTES_RECEIVED.labels(name)
        self._open_connections = FORWARD_CONNECTIONS.labels(name)
        self._buffered = 0  # sum of every connection's ``pending``
        slots = max(1, config.max_buffered_bytes // UNPACKER_BUFFER_BYTES)
        self._slots = asyncio.Semaphore(slots)
        self._slots_per_host = max(1, slots // _PEER_SLOT_SHARE)

    async def start(self) -> None:
        """Bind and start accepting; afterwards ``self.port`` is the bound port (even for port 0)."""
        self._stopping = False
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("forward source %r listening on %s port %d", self.name, self.host, self.port)

    async def stop(self) -> None:
        """Stop accepting, let deliveries in flight finish (up to the shutdown timeout), close all."""
        if self._server is None:
            return
        self._stopping = True
        self._server.close()
        for conn in list(self._connections):
            if not conn.in_flight:
                conn.task.cancel()
        tasks = [conn.task for conn in self._connections]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.config.shutdown_timeout_secs)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        self._refusals.log.flush()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cfg = self.config
        peername = writer.get_extra_info("peername")
        peer = _format_peer(peername)
        host = peername[0] if isinstance(peername, tuple) and peername else peer
        task = asyncio.current_task()
        refusal = None
        if len(self._connections) >= cfg.max_connections:
            refusal = CONNECTION_LIMIT, f"max_connections={cfg.max_connections} reached"
        elif self._per_host[host] >= cfg.max_connections_per_peer:
            refusal = PEER_LIMIT, f"max_connections_per_peer={cfg.max_connections_per_peer} reached"
        if self._stopping or task is None or refusal is not None:
            if refusal is not None and not self._stopping:
                reason, detail = refusal
                self._refusals.refuse(reason, peer, detail)
            writer.close()
            return
        conn = _Connection(task, peer, host)
        self._connections.add(conn)
        self._per_host[host] += 1
        if host not in self._host_slots:
            self._host_slots[host] = asyncio.Semaphore(self._slots_per_host)
        self._open_connections.inc()
        try:
            await self._serve(conn, reader, writer)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        except (ConnectionError, TimeoutError) as exc:
            self._refusals.log.warning("ended", f"connection from {peer} ended: {exc!r}")
        except Exception:
            log.exception("forward source %r: unexpected error on connection from %s", self.name, peer)
        finally:
            self._set_pending(conn, 0)
            self._release_slot(conn)
            self._connections.discard(conn)
            self._per_host[host] -= 1
            if not self._per_host[host]:
                del self._per_host[host]
                del self._host_slots[host]
            self._open_connections.dec()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handshake(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: str
    ) -> bytes | None:
        """HELO, then the client's PING within the deadline: the bytes after the PING, None if refused."""
        cfg = self.config
        nonce = new_nonce()
        ping = PingReader()
        frame: Any = None
        rest = b""
        try:
            async with asyncio.timeout(cfg.handshake_timeout_secs):
                writer.write(encode_helo(nonce, cfg.keepalive))
                await writer.drain()
                while True:
                    data = await reader.read(ping.room)
                    if not data:
                        return None
                    self._bytes_received.inc(len(data))
                    got = ping.feed(data)
                    if got is not None:
                        frame, rest = got
                        break
        except TimeoutError:
            detail = f"no valid PING within handshake_timeout_secs={cfg.handshake_timeout_secs:g}"
            self._refusals.refuse(HANDSHAKE_TIMEOUT, conn.peer, detail)
            return None
        except ValueError as exc:
            pong = refuse_ping(str(exc))
        else:
            pong = answer_ping(frame, nonce, key, cfg.self_hostname)
        writer.write(pong.reply)
        if not pong.ok:
            INPUT_ERRORS.labels(self.name, AUTH_FAILED).inc()
            self._refusals.refuse(AUTH_FAILED, conn.peer, pong.reason)
            return None
        await writer.drain()
        return rest

    async def _serve(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        cfg = self.config
        rest = b""
        if cfg.shared_key is not None:
            after_ping = await self._handshake(conn, reader, writer, cfg.shared_key)
            if after_ping is None:
                return
            rest = after_ping
        decoder = FrameDecoder(cfg.max_frame_bytes, cfg.max_frame_values)
        loop = asyncio.get_running_loop()
        idle = cfg.idle_timeout_secs
        idle_deadline = None if idle is None else loop.time() + idle
        while not self._stopping:
            frames_before = decoder.frames
            if rest:
                data, rest = rest, b""
            else:
                # Mid-frame, a stalled client would hold its decoder slot: it gets frame_timeout_secs.
                mid_frame = decoder.pending_bytes > 0
                deadline = idle_deadline
                if mid_frame:
                    stall = loop.time() + cfg.frame_timeout_secs
                    deadline = stall if deadline is None else min(deadline, stall)
                try:
                    async with asyncio.timeout_at(deadline):
                        data = await reader.read(_READ_BYTES)
                except TimeoutError:
                    self._time_out(conn, decoder.pending_bytes, idle_deadline)
                    return
            if not data:
                if decoder.pending_bytes:
                    detail = f"connection closed {decoder.pending_bytes} bytes into a frame"
                    self._reject(conn, ForwardDecodeError(TRUNCATED, detail))
                return
            self._bytes_received.inc(len(data))
            if not conn.has_slot:
                # Starting a frame costs a decoder (1 MiB at least): take a slot of the memory
                # budget, in arrival order, and at most a share of them per peer.
                await self._take_slot(conn)
            events, acks, error = self._decode(conn, writer, decoder, data)
            decoder.release()
            self._set_pending(conn, decoder.held_bytes)
            if decoder.held_bytes == 0:
                self._release_slot(conn)
            if error is None and conn.pending and self._buffered > cfg.max_buffered_bytes:
                error = ForwardDecodeError(
                    OVERLOADED, f"{self._buffered} bytes of unfinished frames held, max_buffered_bytes="
                    f"{cfg.max_buffered_bytes}; closing so the client resends")
            # Frames that decoded before a bad one are still delivered and acknowledged.
            if (events or acks) and not await self._deliver_and_ack(conn, writer, events, acks):
                return
            if error is not None:
                self._reject(conn, error)
                return
            await writer.drain()
            if idle is not None and decoder.frames != frames_before:
                idle_deadline = loop.time() + idle

    def _time_out(self, conn: _Connection, pending_bytes: int, idle_deadline: float | None) -> None:
        cfg = self.config
        if not pending_bytes:
            detail = f"no frame for idle_timeout_secs={cfg.idle_timeout_secs:g}"
            self._refusals.refuse(IDLE_TIMEOUT, conn.peer, detail)
            return
        if idle_deadline is not None and asyncio.get_running_loop().time() >= idle_deadline:
            detail = f"no complete frame for idle_timeout_secs={cfg.idle_timeout_secs:g}"
        else:
            detail = f"no data for frame_timeout_secs={cfg.frame_timeout_secs:g}"
        INPUT_ERRORS.labels(self.name, TRUNCATED).inc()
        self._refusals.refuse(FRAME_TIMEOUT, conn.peer, f"{detail}, {pending_bytes} bytes into a frame")

    def _set_pending(self, conn: _Connection, pending: int) -> None:
        self._buffered += pending - conn.pending
        conn.pending = pending

    async def _take_slot(self, conn: _Connection) -> None:
        host_slots = self._host_slots[conn.host]
        await host_slots.acquire()
        try:
            await self._slots.acquire()
        except BaseException:
            host_slots.release()
            raise
        conn.has_slot = True

    def _release_slot(self, conn: _Connection) -> None:
        if conn.has_slot:
            conn.has_slot = False
            self._slots.release()
            self._host_slots[conn.host].release()

    def _decode(
        self, conn: _Connection, writer: asyncio.StreamWriter, decoder: FrameDecoder, data: bytes
    ) -> tuple[list[Event], list[Any], ForwardDecodeError | None]:
        """The events and chunks of every frame ``data`` completes, and the error that cut it short."""
        events: list[Event] = []
        acks: list[Any] = []
        cfg = self.config
        try:
            for frame in decoder.feed(data):
                msg = decode_message(
                    frame, self.name, max_bytes=cfg.max_frame_bytes, max_values=cfg.max_frame_values
                )
                if msg.skipped:
                    self._count_skipped(conn, msg.tag, msg.skipped)
                events += msg.events
                if msg.chunk is not None:
                    acks.append(msg.chunk)
        except ForwardDecodeError as exc:
            # Drop the traceback: it references the decoder's frames (and its 1 MiB buffer), a
            # cycle that would otherwise live until the garbage collector runs.
            return events, acks, exc.with_traceback(None)
        return events, acks, None

    async def _deliver_and_ack(
        self, conn: _Connection, writer: asyncio.StreamWriter, events: list[Event], acks: list[Any]
    ) -> bool:
        """Deliver, then acknowledge; False (nothing acknowledged) when ``deliver`` raised."""
        conn.in_flight = True
        try:
            if events:
                try:
                    await self._deliver(events)
                except Exception as exc:
                    log.warning(
                        "forward source %r: delivery failed, closing connection from %s without "
                        "acknowledging %d chunk(s): %r",
                        self.name, conn.peer, len(acks), exc,
                    )
                    return False
                self._events_received.inc(len(events))
            for chunk in acks:
                writer.write(encode_ack(chunk))
            await writer.drain()
            return True
        finally:
            conn.in_flight = False

    def _reject(self, conn: _Connection, error: ForwardDecodeError) -> None:
        INPUT_ERRORS.labels(self.name, error.reason).inc()
        self._refusals.log.warning(error.reason, f"closed connection from {conn.peer}: {error}")

    def _count_skipped(self, conn: _Connection, tag: str, skipped: list[str]) -> None:
        reasons = Counter(skipped)
        for reason, n in reasons.items():
            INPUT_ERRORS.labels(self.name, reason).inc(n)
        self._refusals.log.warning(
            "skipped_entries",
            f"skipped {len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} with tag {tag!r} from "
            f"{conn.peer}: " + ", ".join(f"{reason}={n}" for reason, n in reasons.items()),
        )


def _format_peer(peername: Any) -> str:
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peername)
