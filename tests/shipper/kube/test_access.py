"""Finding the API server: the pod's service account and kubeconfig files, hostile ones included."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipper.errors import StartupError
from shipper.kube.access import in_cluster_access, kubeconfig_access


def service_account(tmp_path: Path) -> Path:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("tok\n")
    (sa / "ca.crt").write_text("PEM")
    return sa


@pytest.mark.parametrize(("host", "server"), [("10.96.0.1", "https://10.96.0.1:443"),
                                               ("fd00:10:96::1", "https://[fd00:10:96::1]:443")])
def test_in_cluster_uses_the_service_env_and_account_files(tmp_path: Path, host: str, server: str) -> None:
    sa = service_account(tmp_path)
    access = in_cluster_access({"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": "443"}, sa)
    assert access.server == server
    assert access.token_file == sa / "token" and access.ca_file == sa / "ca.crt" and access.token is None


@pytest.mark.parametrize(
    ("env", "remove", "needle"),
    [
        ({}, None, "KUBERNETES_SERVICE_HOST is not set"),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "https"}, None,
         "KUBERNETES_SERVICE_PORT is not a port number"),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "99999"}, None, "KUBERNETES_SERVICE_PORT"),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}, "token", "token is missing"),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}, "ca.crt", "ca.crt is missing"),
    ],
)
def test_in_cluster_problems_are_one_line_naming_the_cause(
    tmp_path: Path, env: dict[str, str], remove: str | None, needle: str
) -> None:
    sa = service_account(tmp_path)
    if remove:
        (sa / remove).unlink()
    with pytest.raises(StartupError) as err:
        in_cluster_access(env, sa)
    assert needle in str(err.value) and "\n" not in str(err.value)


def kubeconfig(tmp_path: Path, user: dict[str, Any] | None = None, cluster: dict[str, Any] | None = None,
               **top: Any) -> Path:
    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config", "current-context": "dev",
        "contexts": [{"name": "other", "context": {"cluster": "nope", "user": "nope"}},
                     {"name": "dev", "context": {"cluster": "c1", "user": "u1"}}],
        "clusters": [{"name": "c1", "cluster": cluster if cluster is not None else {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u1", "user": user if user is not None else {"token": "abc"}}],
    }
    doc.update(top)
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_kubeconfig_current_context_with_token_and_inline_ca(tmp_path: Path) -> None:
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n...").decode()
    access = kubeconfig_access(kubeconfig(tmp_path, cluster={"server": "https://127.0.0.1:6443/",
                                                             "certificate-authority-data": ca}))
    assert access.server == "https://127.0.0.1:6443" and access.token == "abc"
    assert access.ca_data is not None and access.ca_data.startswith("-----BEGIN CERTIFICATE")
    assert access.verify


def test_kubeconfig_relative_files_are_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    for name in ("ca.pem", "client.pem", "client-key.pem", "token"):
        (tmp_path / name).write_text("x")
    access = kubeconfig_access(kubeconfig(
        tmp_path,
        user={"client-certificate": "client.pem", "client-key": str(tmp_path / "client-key.pem"), "tokenFile": "token"},
        cluster={"server": "https://127.0.0.1:6443", "certificate-authority": "ca.pem",
                 "insecure-skip-tls-verify": True},
    ))
    assert access.ca_file == tmp_path / "ca.pem" and access.cert_file == tmp_path / "client.pem"
    assert access.key_file == tmp_path / "client-key.pem" and access.token_file == tmp_path / "token"
    assert not access.verify


def test_kubeconfig_other_context_and_client_certificate_data(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, user={"client-certificate-data": base64.b64encode(b"CRT").decode(),
                                      "client-key-data": base64.b64encode(b"KEY").decode()})
    access = kubeconfig_access(path)
    assert (access.cert_data, access.key_data) == (b"CRT", b"KEY")
    with pytest.raises(StartupError, match="clusters: no entry named 'nope'"):
        kubeconfig_access(path, context="other")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\x00\xff not yaml: [", "not valid YAML"),
        (b"key: [unclosed\n", "not valid YAML (line"),
        (b"- a list\n- not a mapping\n", "not a YAML mapping"),
        (b"", "not a YAML mapping"),
        (b"apiVersion: v1\n", "current-context is not set"),
        (b"current-context: dev\ncontexts: 5\n", "contexts is missing or not a list"),
        (b"current-context: dev\ncontexts: []\n", "contexts: no entry named 'dev'"),
        (b"current-context: dev\ncontexts: [{name: dev, context: nope}]\n",
         "contexts[name=dev].context is missing or not a mapping"),
        (b"current-context: dev\ncontexts: [{name: dev, context: {user: u}}]\n",
         "contexts[name=dev].context.cluster is not set"),
    ],
)
def test_hostile_kubeconfig_files_give_one_line_naming_the_problem(tmp_path: Path, content: bytes,
                                                                   needle: str) -> None:
    path = tmp_path / "kc"
    path.write_bytes(content)
    with pytest.raises(StartupError) as err:
        kubeconfig_access(path)
    assert needle in str(err.value), str(err.value)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("user", "cluster", "needle"),
    [
        ({"exec": {"command": "aws"}}, None, "users[name=u1].user.exec: credential plugins are not supported"),
        ({"auth-provider": {"name": "gcp"}}, None, "users[name=u1].user.auth-provider"),
        ({"token": 5}, None, "users[name=u1].user.token is not a string"),
        ({"token": "abc\r\nX-Injected: 1"}, None, "users[name=u1].user.token is not a string of printable"),
        ({"tokenFile": "missing-token"}, None, "users[name=u1].user.tokenFile"),
        ({"client-certificate-data": base64.b64encode(b"C").decode()}, None, "must be given together"),
        ({"client-key-data": "%%% not base64"}, None, "users[name=u1].user.client-key-data is not valid base64"),
        ({"client-certificate": "nope.pem", "client-key": "nope.pem"}, None,
         "users[name=u1].user.client-certificate"),
        (None, {"certificate-authority": "missing-ca.pem", "server": "https://127.0.0.1:1"},
         "clusters[name=c1].cluster.certificate-authority"),
        (None, {}, "clusters[name=c1].cluster.server is missing"),
        (None, {"server": "ftp://127.0.0.1"}, "clusters[name=c1].cluster.server is missing or not an http(s) URL"),
        (None, {"server": ["https://x"]}, "clusters[name=c1].cluster.server"),
    ],
)
def test_unusable_kubeconfig_entries_are_named(tmp_path: Path, user: dict[str, Any] | None,
                                               cluster: dict[str, Any] | None, needle: str) -> None:
    with pytest.raises(StartupError) as err:
        kubeconfig_access(kubeconfig(tmp_path, user=user, cluster=cluster))
    assert needle in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_missing_or_huge_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="cannot read"):
        kubeconfig_access(tmp_path / "absent")
    big = tmp_path / "big"
    big.write_bytes(b"a: " + b"x" * (5 * 1024 * 1024))
    with pytest.raises(StartupError, match="larger than"):
        kubeconfig_access(big)
