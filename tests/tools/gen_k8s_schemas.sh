#!/usr/bin/env bash
# Regenerates tests/deploy/schemas/ (committed; the tests never need this script or a network).
# Inputs, by version: the kubernetes-validate wheel from PyPI (Kubernetes JSON schemas) and the
# prometheus-operator Go module from the Go module proxy (ServiceMonitor / PrometheusRule CRDs).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
k8s_version="${K8S_SCHEMA_VERSION:-v1.34.0}"
kv_version="${KUBERNETES_VALIDATE_VERSION:-1.37.0}"
operator_version="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
python="${PYTHON:-$root/.venv/bin/python}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$python" -m pip download -q --no-deps -d "$tmp" "kubernetes-validate==$kv_version" >&2
operator_dir="$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json \
  "github.com/prometheus-operator/prometheus-operator@$operator_version" \
  | "$python" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
rm -rf "$root/tests/deploy/schemas"
"$python" "$here/gen_k8s_schemas.py" --wheel "$tmp"/kubernetes_validate-*.whl --k8s-version "$k8s_version" \
  --operator-dir "$operator_dir" --out "$root/tests/deploy/schemas"
echo "$root/tests/deploy/schemas"
