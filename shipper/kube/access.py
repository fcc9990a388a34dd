"""Where the Kubernetes API is and how to authenticate: a kubeconfig file or the pod's service account.

Both are untrusted input: any problem (a file that is not YAML, a missing key, an exec plugin, a token
file that is not there) raises :class:`StartupError` with one line naming the file and the key.
Paths inside a kubeconfig are relative to the kubeconfig's own directory, as kubectl reads them.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shipper.errors import StartupError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_MAX_KUBECONFIG_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ClusterAccess:
    """Everything needed to reach and authenticate to one API server."""

    server: str
    token: str | None = None
    token_file: Path | None = None
    ca_file: Path | None = None
    ca_data: str | None = None
    cert_file: Path | None = None
    cert_data: bytes | None = None
    key_file: Path | None = None
    key_data: bytes | None = None
    verify: bool = True


def in_cluster_access(env: Mapping[str, str] | None = None, sa_dir: Path = SERVICE_ACCOUNT_DIR) -> ClusterAccess:
    """The pod's own service account: ``KUBERNETES_SERVICE_HOST``/``_PORT`` and its token and CA files."""
    env = os.environ if env is None else env
    host = env.get("KUBERNETES_SERVICE_HOST", "").strip()
    port = env.get("KUBERNETES_SERVICE_PORT", "").strip()
    if not host:
        raise StartupError("kubernetes_api: KUBERNETES_SERVICE_HOST is not set (not running in a pod? set kubeconfig)")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise StartupError(f"kubernetes_api: KUBERNETES_SERVICE_PORT is not a port number: {port[:40]!r}")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    token_file, ca_file = sa_dir / "token", sa_dir / "ca.crt"
    for f in (token_file, ca_file):
        if not f.is_file():
            raise StartupError(f"kubernetes_api: service account file {f} is missing")
    return ClusterAccess(server=f"https://{host}:{port}", token_file=token_file, ca_file=ca_file)


def kubeconfig_access(path: str | Path, context: str | None = None) -> ClusterAccess:
    """The cluster and user of ``context`` (default: ``current-context``) in the kubeconfig at ``path``."""
    path = Path(path)
    doc = _load(path)
    where = f"kubeconfig {path}"
    name = context or doc.get("current-context")
    if not isinstance(name, str) or not name:
        raise StartupError(f"{where}: current-context is not set")
    ctx = _named(doc, "contexts", name, "context", where)
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if not isinstance(cluster_name, str) or not cluster_name:
        raise StartupError(f"{where}: contexts[name={name}].context.cluster is not set")
    cluster = _named(doc, "clusters", cluster_name, "cluster", where)
    user: Mapping[str, Any] = {}
    if isinstance(user_name, str) and user_name:
        user = _named(doc, "users", user_name, "user", where)
    ckey, ukey = f"clusters[name={cluster_name}].cluster", f"users[name={user_name}].user"

    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise StartupError(f"{where}: {ckey}.server is missing or not an http(s) URL")
    for unsupported in ("exec", "auth-provider"):
        if unsupported in user:
            raise StartupError(f"{where}: {ukey}.{unsupported}: credential plugins are not supported; "
                               "use token, tokenFile or client-certificate/client-key")
    base = path.parent
    ca_data = _b64(cluster, "certificate-authority-data", where, ckey)
    token = user.get("token")
    if token is not None and (not isinstance(token, str) or not _header_safe(token)):
        raise StartupError(f"{where}: {ukey}.token is not a string of printable characters")
    token_file = _path(user, "tokenFile", base, where, ukey)
    if token_file is not None and not token_file.is_file():
        raise StartupError(f"{where}: {ukey}.tokenFile: {token_file} is missing")
    access = ClusterAccess(
        server=server.rstrip("/"),
        token=token or None,
        token_file=None if token else token_file,
        ca_file=_path(cluster, "certificate-authority", base, where, ckey),
        ca_data=ca_data.decode("ascii", "replace") if ca_data else None,
        cert_file=_path(user, "client-certificate", base, where, ukey),
        cert_data=_b64(user, "client-certificate-data", where, ukey),
        key_file=_path(user, "client-key", base, where, ukey),
        key_data=_b64(user, "client-key-data", where, ukey),
        verify=cluster.get("insecure-skip-tls-verify") is not True,
    )
    has_cert = access.cert_file is not None or access.cert_data is not None
    has_key = access.key_file is not None or access.key_data is not None
    if has_cert != has_key:
        raise StartupError(f"{where}: {ukey}: client-certificate and client-key must be given together")
    for f, key in ((access.ca_file, f"{ckey}.certificate-authority"), (access.cert_file, f"{ukey}.client-certificate"),
                   (access.key_file, f"{ukey}.client-key")):
        if f is not None and not f.is_file():
            raise StartupError(f"{where}: {key}: {f} is missing")
    return access


def _header_safe(token: str) -> bool:
    return token.isascii() and token.isprintable() and " " not in token


def _load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            raw = fh.read(_MAX_KUBECONFIG_BYTES + 1)
    except OSError as exc:
        raise StartupError(f"kubeconfig {path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > _MAX_KUBECONFIG_BYTES:
        raise StartupError(f"kubeconfig {path}: larger than {_MAX_KUBECONFIG_BYTES} bytes")
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise StartupError(f"kubeconfig {path}: not valid YAML{at}") from None
    if not isinstance(doc, dict):
        raise StartupError(f"kubeconfig {path}: not a YAML mapping")
    return doc


def _named(doc: Mapping[str, Any], section: str, name: str, inner: str, where: str) -> Mapping[str, Any]:
    entries = doc.get(section)
    if not isinstance(entries, list):
        raise StartupError(f"{where}: {section} is missing or not a list")
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(inner)
            if not isinstance(body, dict):
                raise StartupError(f"{where}: {section}[name={name}].{inner} is missing or not a mapping")
            return body
    raise StartupError(f"{where}: {section}: no entry named {name!r}")


def _path(body: Mapping[str, Any], key: str, base: Path, where: str, prefix: str) -> Path | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise StartupError(f"{where}: {prefix}.{key} is not a string")
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else base / p


def _b64(body: Mapping[str, Any], key: str, where: str, prefix: str) -> bytes | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise StartupError(f"{where}: {prefix}.{key} is not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise StartupError(f"{where}: {prefix}.{key} is not valid base64 PEM") from None
