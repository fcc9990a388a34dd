"""KubeClient: auth headers, token file rotation, error answers, line streaming, client certificates."""

from __future__ import annotations

import asyncio
import datetime
import logging
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from shipper.errors import StartupError
from shipper.kube import KubeApiError, KubeClient
from shipper.kube.client import split_lines


def recorder(responses: list[httpx.Response] | None = None) -> tuple[list[httpx.Request], httpx.MockTransport]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(httpx.Request(request.method, request.url, headers=request.headers.copy()))  # auth retries mutate
        if responses:
            return responses.pop(0)
        return httpx.Response(200, json={"items": [], "metadata": {"resourceVersion": "1"}})

    return seen, httpx.MockTransport(handle)


def test_from_kubeconfig_talks_to_its_server_with_its_token(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump({
        "current-context": "c", "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "s3cret"}}]}))
    seen, transport = recorder()

    async def go() -> Any:
        client = KubeClient.from_kubeconfig(path, transport=transport)
        try:
            return await client.get_json("/api/v1/namespaces", {"limit": "5"})
        finally:
            await client.aclose()

    assert asyncio.run(go())["metadata"]["resourceVersion"] == "1"
    assert str(seen[0].url) == "https://127.0.0.1:6443/api/v1/namespaces?limit=5"
    assert seen[0].headers["Authorization"] == "Bearer s3cret"


def test_token_file_is_reread_periodically_and_after_a_401(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("one\n")
    seen, transport = recorder()

    async def go() -> None:
        client = KubeClient("https://127.0.0.1:6443", token_file=token, token_reread_secs=0.2, transport=transport)
        await client.get_json("/api/v1/pods")
        token.write_text("two")
        await client.get_json("/api/v1/pods")  # within the period: the old token
        await asyncio.sleep(0.25)
        await client.get_json("/api/v1/pods")
        await client.aclose()

    asyncio.run(go())
    assert [r.headers["Authorization"] for r in seen] == ["Bearer one", "Bearer one", "Bearer two"]

    token.write_text("three")
    seen, transport = recorder([httpx.Response(401, json={"message": "Unauthorized"})])

    async def rotated() -> None:
        client = KubeClient("https://127.0.0.1:6443", token_file=token, token_reread_secs=3600, transport=transport)
        token.write_text("four")  # rotated after the first read
        await client.get_json("/api/v1/pods")
        await client.aclose()

    asyncio.run(rotated())
    assert [r.headers["Authorization"] for r in seen] == ["Bearer three", "Bearer four"]


def test_a_vanished_token_file_keeps_the_last_token_and_warns_once(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    token = tmp_path / "token"
    token.write_text("kept")
    seen, transport = recorder()

    async def go() -> None:
        client = KubeClient("https://127.0.0.1:6443", token_file=token, token_reread_secs=0.0, transport=transport)
        await client.get_json("/x")
        token.unlink()
        for _ in range(3):
            await client.get_json("/x")
        token.write_text("half\nwritten\x00")
        await client.get_json("/x")
        await client.aclose()

    with caplog.at_level(logging.WARNING, logger="shipper.kube"):
        asyncio.run(go())
    assert {r.headers["Authorization"] for r in seen} == {"Bearer kept"}
    assert len([r for r in caplog.records if "token file" in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("response", "status", "message"),
    [
        (httpx.Response(403, json={"kind": "Status", "message": 'pods is forbidden: User "x"'}), 403,
         'HTTP 403: pods is forbidden: User "x"'),
        (httpx.Response(410, json={"kind": "Status", "code": 410, "message": "too old"}), 410, "HTTP 410: too old"),
        (httpx.Response(502, content=b"<html>bad gateway</html>\nmore"), 502, "HTTP 502: <html>bad gateway</html>"),
        (httpx.Response(200, content=b"{not json"), 200, "the answer is not JSON"),
    ],
)
def test_error_answers_become_kube_api_errors(response: httpx.Response, status: int, message: str) -> None:
    _, transport = recorder([response])

    async def go() -> None:
        client = KubeClient("https://127.0.0.1:6443", token="t", transport=transport)
        try:
            await client.get_json("/api/v1/pods")
        finally:
            await client.aclose()

    with pytest.raises(KubeApiError) as err:
        asyncio.run(go())
    assert err.value.status == status and message in str(err.value)
    assert err.value.gone == (status == 410)


def test_split_lines_across_chunks_with_a_bound() -> None:
    async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
        for p in parts:
            yield p

    async def collect(*parts: bytes, limit: int = 10) -> list[bytes | None]:
        return [line async for line in split_lines(chunks(*parts), limit)]

    assert asyncio.run(collect(b'{"a":', b'1}\n{"b"', b":2}\n\n", b'{"c":3}')) == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
    assert asyncio.run(collect(b"short\n", b"x" * 8, b"y" * 8, b"z\nok\n")) == [b"short", None, b"ok"]
    assert asyncio.run(collect(b"0123456789AB\nok\n")) == [None, b"ok"]
    assert asyncio.run(collect(b"x" * 30)) == [None]


def test_watch_stream_error_status_is_raised_with_its_message() -> None:
    _, transport = recorder([httpx.Response(410, json={"code": 410, "message": "too old resource version"})])

    async def go() -> None:
        client = KubeClient("https://127.0.0.1:6443", token="t", transport=transport)
        try:
            async with client.stream_lines("/api/v1/pods", {"watch": "true"}, 10.0) as lines:
                async for _ in lines:
                    pass
        finally:
            await client.aclose()

    with pytest.raises(KubeApiError, match="too old resource version") as err:
        asyncio.run(go())
    assert err.value.gone


def self_signed() -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ecvi-logs")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def test_inline_client_certificate_is_loaded_and_its_temp_files_removed(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    cert, key = self_signed()
    client = KubeClient("https://127.0.0.1:6443", cert_data=cert, key_data=key, ca_data=cert.decode())
    asyncio.run(client.aclose())
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(StartupError, match="client-certificate/client-key unusable") as err:
        KubeClient("https://127.0.0.1:6443", cert_data=cert, key_data=b"not a key")
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(StartupError, match="certificate-authority unusable"):
        KubeClient("https://127.0.0.1:6443", ca_data="garbage")
