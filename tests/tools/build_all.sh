#!/usr/bin/env bash
# Builds (or finds in the cache) every validator tool the deploy tests use and the Kubernetes API
# server and etcd of the kube fixture, so a test run does not spend its first minutes compiling.
# Prints one "name path" line per tool.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for tool in kubeconform kustomize promtool prometheus amtool helm; do
  echo "$tool $(bash "$here/build_go_tool.sh" "$tool")"
done
# The Kubernetes API server and its etcd for the tests/services/kube.py fixture.
for tool in kube-apiserver etcd; do
  echo "$tool $(bash "$here/build_kube.sh" "$tool")"
done
echo "pyvrl $(bash "$here/fetch_pyvrl.sh")"
