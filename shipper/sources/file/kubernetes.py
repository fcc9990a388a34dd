"""Kubernetes pod metadata from the kubelet's log file paths."""

from __future__ import annotations

import re
from functools import lru_cache

#: /var/log/containers/<pod>_<namespace>_<container>-<64 hex id>.log (also rendered into VRL by ``pipelines``).
CONTAINER_LOG_PATH = re.compile(
    r"/containers/(?P<pod>[^/_]+)_(?P<ns>[^/_]+)_(?P<container>.+)-(?P<id>[0-9a-f]{64})\.log"
)
#: /var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log
POD_LOG_PATH = re.compile(r"/pods/(?P<ns>[^/_]+)_(?P<pod>[^/_]+)_(?P<uid>[^/]+)/(?P<container>[^/]+)/\d+\.log")


@lru_cache(maxsize=65536)
def metadata_from_path(path: str) -> dict[str, str] | None:
    """``namespace``, ``pod_name``, ``container_name`` and ``container_id`` or ``pod_uid``."""
    m = CONTAINER_LOG_PATH.search(path)
    if m:
        return {"namespace": m["ns"], "pod_name": m["pod"], "container_name": m["container"],
                "container_id": m["id"]}
    m = POD_LOG_PATH.search(path)
    if m:
        return {"namespace": m["ns"], "pod_name": m["pod"], "container_name": m["container"],
                "pod_uid": m["uid"]}
    return None
