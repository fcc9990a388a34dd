#!/usr/bin/env bash
# Builds the helm CLI from its Go module (through the Go module proxy) and caches the binary,
# for the chart tests (tests/deploy/test_helm.py): `helm lint --strict` and `helm template`.
# Usage: build_helm.sh ; prints the binary's path on stdout (build output goes to stderr).
# Version pinned below, overridable with HELM_VERSION. The cache is $ECVI_CACHE_DIR (default
# ~/.cache/ecvi-logs), the binary helm-<version>. A lock file in the cache makes a second
# concurrent run wait for the first and reuse its binary.
# If `go install pkg@version` refuses (a module with replace directives), the module is
# downloaded and built in a writable copy with its own go.mod, replaces included.
set -euo pipefail
version="${HELM_VERSION:-v3.22.0}"
major="${version%%.*}"
module="helm.sh/helm/$major"
pkg="$module/cmd/helm"
cache="${ECVI_CACHE_DIR:-$HOME/.cache/ecvi-logs}"
bin="$cache/helm-$version"
if [[ -x "$bin" ]]; then echo "$bin"; exit 0; fi
mkdir -p "$cache"
exec 9>"$cache/.helm-$version.lock"
if command -v flock >/dev/null; then
  flock -n 9 || { echo "another build of helm $version is running; waiting for it" >&2; flock 9; }
fi
if [[ -x "$bin" ]]; then echo "$bin"; exit 0; fi
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -buildvcs=false"
work="$(mktemp -d "$cache/helm-build.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
start=$SECONDS
# So that `helm version` names the release instead of "v3.x-dev".
ldflags="-s -w -X $module/internal/version.version=$version"
if ! GOBIN="$work/bin" go install -trimpath -ldflags "$ldflags" "$pkg@$version" >&2; then
  echo "go install failed; building from a copy of the module" >&2
  src="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$module@$version" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  cp -r "$src" "$work/src" && chmod -R u+w "$work/src"
  (cd "$work/src" && go build -mod=mod -trimpath -ldflags "$ldflags" -o "$work/bin/helm" ./cmd/helm) >&2
fi
mv "$work/bin/helm" "$bin"
echo "built helm $version in $((SECONDS - start)) s: $bin" >&2
echo "$bin"
