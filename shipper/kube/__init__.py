"""Kubernetes API metadata for the file source: a read-only client and a list+watch pod/namespace cache."""

from shipper.kube.cache import KubeMetadataCache
from shipper.kube.client import KubeApiError, KubeClient
from shipper.kube.models import NamespaceInfo, PodInfo

__all__ = ["KubeApiError", "KubeClient", "KubeMetadataCache", "NamespaceInfo", "PodInfo"]
