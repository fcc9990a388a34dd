"""HTTP options shared by the HTTP sinks (auth, TLS) and the client they build from them."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr


class HttpAuthConfig(BaseModel):
    """Basic or bearer authentication; secrets are never printed."""

    model_config = ConfigDict(extra="forbid")
    strategy: Literal["basic", "bearer"] = Field(
        "basic", description="'basic' (user and password) or 'bearer' (an Authorization: Bearer token)."
    )
    user: str | None = Field(None, description="User name for basic authentication.")
    password: SecretStr | None = Field(None, description="Password for basic authentication (never printed).")
    token: SecretStr | None = Field(None, description="Token for bearer authentication (never printed).")

    def headers(self) -> dict[str, str]:
        if self.strategy == "bearer":
            return {"Authorization": f"Bearer {self.token.get_secret_value() if self.token else ''}"}
        return {}

    def httpx_auth(self) -> httpx.Auth | None:
        if self.strategy == "basic" and self.user is not None:
            return httpx.BasicAuth(self.user, self.password.get_secret_value() if self.password else "")
        return None


class TlsConfig(BaseModel):
    """TLS verification and client certificates."""

    model_config = ConfigDict(extra="forbid")
    ca_file: str | None = Field(None, description="CA bundle to verify the server with.")
    crt_file: str | None = Field(None, description="Client certificate (mutual TLS).")
    key_file: str | None = Field(None, description="Client key (mutual TLS).")
    verify: bool = Field(True, description="Verify the server certificate.")

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.verify:
            return False
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.crt_file:
            ctx.load_cert_chain(self.crt_file, self.key_file)
        return ctx


def build_client(
    auth: HttpAuthConfig | None, tls: TlsConfig | None, timeout: float, headers: dict[str, str] | None = None,
    *, transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` with the sink's auth, TLS and timeout.

    ``transport`` replaces the network (``httpx.MockTransport`` in tests); TLS then does not apply.
    """
    h = dict(headers or {})
    if auth:
        h.update(auth.headers())
    return httpx.AsyncClient(
        auth=auth.httpx_auth() if auth else None,
        verify=tls.ssl_context() if tls else True,
        timeout=timeout,
        headers=h,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        transport=transport,
    )


async def post_body(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str],
                    **kwargs: Any) -> httpx.Response:
    """POST ``body``, letting it go as soon as it is sent.

    An httpx response and its stream refer to each other, so a response lives until the next
    cyclic garbage collection, and with it its request and a body given as bytes: at full rate,
    tens of MiB of sent bodies. Sent as a one-shot stream with its ``Content-Length`` (never
    chunked), the body is released when the stream ends.
    """

    async def once() -> AsyncIterator[bytes]:
        yield body

    return await client.post(url, content=once(), headers={**headers, "Content-Length": str(len(body))}, **kwargs)
