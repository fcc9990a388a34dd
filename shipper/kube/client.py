"""A small read-only Kubernetes API client: one ``httpx.AsyncClient``, bearer or client-certificate auth.

It knows only what the metadata cache needs: GET a JSON document and stream a watch as lines.
A service-account token file is re-read every minute, because bound tokens rotate under a running pod.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

import httpx
import orjson

from shipper.errors import ShipperError, StartupError
from shipper.kube.access import ClusterAccess, in_cluster_access, kubeconfig_access

log = logging.getLogger("shipper.kube")

TOKEN_REREAD_SECS = 60.0
MAX_LINE_BYTES = 16 * 1024 * 1024  # etcd caps an object at ~1.5 MiB; a longer line is not an object
_ERROR_BODY_BYTES = 2048


class KubeApiError(ShipperError):
    """The API answered with an error status (``status``) or something that is not the JSON it should be."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def gone(self) -> bool:
        """410 Gone: the resourceVersion or continue token is too old; the caller must list again."""
        return self.status == 410


class _TokenAuth(httpx.Auth):
    """Bearer token, from a string or a file re-read every ``reread_secs`` and after a 401."""

    def __init__(self, token: str | None, token_file: Path | None, reread_secs: float) -> None:
        self._token = token or ""
        self._file = token_file
        self._reread_secs = reread_secs
        self._read_at = float("-inf")
        self._read_failing = False
        self._current()

    def _current(self, force: bool = False) -> str:
        now = time.monotonic()
        if self._file is not None and (force or now - self._read_at >= self._reread_secs):
            self._read_at = now
            try:
                token = self._file.read_text(encoding="ascii").strip()
                if not (token.isprintable() and " " not in token):
                    raise ValueError("not a bearer token (unprintable characters)")
            except (OSError, ValueError) as exc:
                # Rotation replaces the file atomically; keep the last token rather than send none.
                if not self._read_failing:
                    log.warning("kubernetes API token file %s unreadable, keeping the last token: %s", self._file, exc)
                self._read_failing = True
            else:
                if token:
                    self._token = token
                self._read_failing = False
        return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._current()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401 and self._file is not None and self._current(force=True) != token:
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request


class KubeClient:
    """Read-only access to one API server (``url``), e.g. ``https://10.96.0.1:443``.

    ``transport`` replaces the network (``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        ca_file: str | Path | None = None,
        verify: bool = True,
        *,
        token_file: str | Path | None = None,
        ca_data: str | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        cert_data: bytes | None = None,
        key_data: bytes | None = None,
        timeout_secs: float = 10.0,
        token_reread_secs: float = TOKEN_REREAD_SECS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_secs = timeout_secs
        tls = _ssl_context(ca_file, ca_data, cert_file, key_file, cert_data, key_data, verify)
        auth = _TokenAuth(token, Path(token_file) if token_file else None, token_reread_secs)
        self._http = httpx.AsyncClient(
            base_url=self.url, verify=tls, auth=auth, transport=transport, timeout=timeout_secs,
            headers={"Accept": "application/json", "User-Agent": "ecvi-logs-shipper"},
        )

    @classmethod
    def from_access(cls, access: ClusterAccess, **kwargs: Any) -> KubeClient:
        """A client for an already parsed :class:`ClusterAccess`."""
        return cls(access.server, access.token, access.ca_file, access.verify, token_file=access.token_file,
                   ca_data=access.ca_data, cert_file=access.cert_file, key_file=access.key_file,
                   cert_data=access.cert_data, key_data=access.key_data, **kwargs)

    @classmethod
    def from_kubeconfig(cls, path: str | Path, context: str | None = None, **kwargs: Any) -> KubeClient:
        """A client for the kubeconfig's current context (or ``context``); :class:`StartupError` if unusable."""
        return cls.from_access(kubeconfig_access(path, context), **kwargs)

    @classmethod
    def in_cluster(cls, **kwargs: Any) -> KubeClient:
        """A client for the pod's service account; :class:`StartupError` outside a pod."""
        return cls.from_access(in_cluster_access(), **kwargs)

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET ``path`` and decode its JSON body; :class:`KubeApiError` on an error status or bad JSON."""
        response = await self._http.get(path, params=params)
        if response.status_code != 200:
            raise _status_error(response.status_code, response.content[:_ERROR_BODY_BYTES])
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise KubeApiError(f"GET {path}: the answer is not JSON", response.status_code) from None

    @contextlib.asynccontextmanager
    async def stream_lines(
        self, path: str, params: dict[str, str], read_timeout_secs: float
    ) -> AsyncIterator[AsyncIterator[bytes | None]]:
        """Stream ``path`` as lines (a watch); ``None`` stands for a line longer than :data:`MAX_LINE_BYTES`."""
        timeout = httpx.Timeout(self.timeout_secs, read=read_timeout_secs)
        async with self._http.stream("GET", path, params=params, timeout=timeout) as response:
            if response.status_code != 200:
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= _ERROR_BODY_BYTES:
                        break
                raise _status_error(response.status_code, body[:_ERROR_BODY_BYTES])
            yield split_lines(response.aiter_bytes(), MAX_LINE_BYTES)

    async def aclose(self) -> None:
        await self._http.aclose()


async def split_lines(chunks: AsyncIterator[bytes], max_line: int) -> AsyncIterator[bytes | None]:
    """Lines of a byte stream without their newline; an overlong line is dropped and yields ``None``."""
    buf = bytearray()
    skipping = False
    async for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if not skipping:
                    buf += chunk[start:]
                    if len(buf) > max_line:
                        buf.clear()
                        skipping = True
                break
            if skipping:
                skipping = False
                yield None
            else:
                buf += chunk[start:end]
                if len(buf) > max_line:
                    yield None
                elif buf.strip():
                    yield bytes(buf)
                buf.clear()
            start = end + 1
    if skipping:
        yield None
    elif buf.strip():
        yield bytes(buf)


def _status_error(status: int, body: bytes) -> KubeApiError:
    message = ""
    with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
        message = str(orjson.loads(body).get("message", ""))
    if not message:
        message = body.decode("utf-8", "replace").splitlines()[0] if body.strip() else ""
    return KubeApiError(f"HTTP {status}: {message[:300]}", status)


def _ssl_context(ca_file: str | Path | None, ca_data: str | None, cert_file: str | Path | None,
                 key_file: str | Path | None, cert_data: bytes | None, key_data: bytes | None,
                 verify: bool) -> ssl.SSLContext:
    try:
        ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None, cadata=ca_data or None)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise StartupError(f"kubernetes_api: certificate-authority unusable: {exc}") from None
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert_file or cert_data:
        with _pem_files(cert_file, cert_data, key_file, key_data) as (crt, key):
            try:
                ctx.load_cert_chain(crt, key)
            except (ssl.SSLError, OSError) as exc:
                raise StartupError(f"kubernetes_api: client-certificate/client-key unusable: {exc}") from None
    return ctx


@contextlib.contextmanager
def _pem_files(cert_file: str | Path | None, cert_data: bytes | None, key_file: str | Path | None,
               key_data: bytes | None) -> Generator[tuple[str, str | None], None, None]:
    """Paths for ``load_cert_chain``, which reads only files: inline data goes to 0600 temp files, then away."""
    made: list[str] = []
    try:
        paths: list[str | None] = []
        for path, data in ((cert_file, cert_data), (key_file, key_data)):
            if data is not None:
                fd, name = tempfile.mkstemp(prefix="ecvi-kube-", suffix=".pem")
                made.append(name)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                paths.append(name)
            else:
                paths.append(str(path) if path else None)
        assert paths[0] is not None
        yield paths[0], paths[1]
    finally:
        for name in made:
            with contextlib.suppress(OSError):
                os.unlink(name)
