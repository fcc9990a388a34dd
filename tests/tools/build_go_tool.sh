#!/usr/bin/env bash
# Builds a validator tool from its Go module (through the Go module proxy) and caches the binary.
# Usage: build_go_tool.sh TOOL ; prints the binary's path on stdout (build output goes to stderr).
# TOOL is one of: kubeconform, kustomize, promtool, prometheus, amtool, helm. Versions are pinned below
# and can be overridden with <TOOL>_VERSION (e.g. PROMTOOL_VERSION=v0.316.0). The cache is
# $ECVI_CACHE_DIR (default ~/.cache/ecvi-logs), the binary <tool>-<version>.
# A lock file in the cache makes a second concurrent run wait for the first and reuse its binary.
set -euo pipefail
tool="${1:?usage: build_go_tool.sh kubeconform|kustomize|promtool|prometheus|amtool|helm}"
case "$tool" in
  # kubeconform validates manifests against JSON schemas (shipped in tests/deploy/schemas, offline).
  kubeconform) pkg=github.com/yannh/kubeconform/cmd/kubeconform; version="${KUBECONFORM_VERSION:-v0.8.0}" ;;
  # v5.8.3 needs Go 1.27; v5.8.2 is the newest that builds with the Go 1.26 installed here.
  kustomize)   pkg=sigs.k8s.io/kustomize/kustomize/v5; version="${KUSTOMIZE_VERSION:-v5.8.2}" ;;
  # Prometheus' Go module versions v0.3XX.Y are the releases v3.XX.Y.
  promtool)    pkg=github.com/prometheus/prometheus/cmd/promtool; version="${PROMTOOL_VERSION:-v0.316.0}" ;;
  # The server from the same module and release as promtool; without the builtinassets tag it
  # serves no web UI, which the tests do not need (they use the HTTP API).
  prometheus)  pkg=github.com/prometheus/prometheus/cmd/prometheus; version="${PROMETHEUS_VERSION:-${PROMTOOL_VERSION:-v0.316.0}}" ;;
  amtool)      pkg=github.com/prometheus/alertmanager/cmd/amtool; version="${AMTOOL_VERSION:-v0.35.0}" ;;
  # helm lints and renders the chart (tests/deploy/test_helm.py).
  helm)        version="${HELM_VERSION:-v3.22.0}"; pkg="helm.sh/helm/${version%%.*}/cmd/helm" ;;
  *) echo "unknown tool: $tool" >&2; exit 2 ;;
esac
source "$(dirname "$0")/_cached_build.sh"
cached_or_lock "$tool" "$version"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -buildvcs=false"
# `go install pkg@version` builds with the module's own go.mod (none of these has replace directives).
ldflags="-s -w"
if [[ "$tool" == helm ]]; then
  # So that `helm version` names the release instead of "v3.x-dev".
  ldflags+=" -X helm.sh/helm/${version%%.*}/internal/version.version=$version"
fi
if [[ "$pkg" == github.com/prometheus/prometheus/* && "$version" =~ ^v0\.3([0-9][0-9])\.([0-9]+)$ ]]; then
  # So that `--version` and /api/v1/status/buildinfo name the release (v0.316.0 is 3.16.0).
  ldflags+=" -X github.com/prometheus/common/version.Version=3.$((10#${BASH_REMATCH[1]})).${BASH_REMATCH[2]}"
fi
GOBIN="$work/bin" go install -trimpath -ldflags "$ldflags" "$pkg@$version" >&2
# go install names the binary after the package's last element, skipping a major version suffix.
name="$(basename "$pkg")"
[[ "$name" =~ ^v[0-9]+$ ]] && name="$(basename "$(dirname "$pkg")")"
mv "$work/bin/$name" "$bin"
echo "built $tool $version in $((SECONDS - start)) s: $bin" >&2
echo "$bin"
