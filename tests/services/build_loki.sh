#!/usr/bin/env bash
# Builds Grafana Loki from its Go module (through the Go module proxy) and caches the binary.
# Usage: build_loki.sh [VERSION] ; prints the binary's path on stdout.
# Loki's go.mod replaces github.com/grafana/loki/pkg/push with the local path ./pkg/push,
# which the module zip does not contain: drop that replace and require pkg/push at the
# release commit instead.
# A lock file in the cache makes a second concurrent run wait for the first and reuse its binary.
set -euo pipefail
version="${1:-${LOKI_VERSION:-v3.7.6}}"
push_commit="${LOKI_PUSH_COMMIT:-}"
source "$(dirname "$0")/../tools/_cached_build.sh"
cached_or_lock loki "$version"
export GOFLAGS="-mod=mod" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" CGO_ENABLED=0
info="$(go mod download -json "github.com/grafana/loki/v3@$version")"
src="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["Dir"])' "$info")"
# pkg/push is required at the exact commit of the release tag (the proxy wants the full hash).
[[ -n "$push_commit" ]] || push_commit="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["Origin"]["Hash"])' "$info")"
cp -r "$src/." "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"
go mod edit -dropreplace=github.com/grafana/loki/pkg/push
# The proxy may refuse that commit; then keep the pseudo-version go.mod already requires.
if ! go get "github.com/grafana/loki/pkg/push@$push_commit" >&2; then
  echo "pkg/push@$push_commit not served; building with the version go.mod requires" >&2
fi
vprefix=github.com/grafana/loki/v3/pkg/util/build
ldflags="-s -w -X $vprefix.Version=${version#v} -X $vprefix.Revision=${push_commit:0:8} -X $vprefix.Branch=release"
go build -tags netgo -ldflags "$ldflags" -o "$bin.tmp" ./cmd/loki >&2
mv "$bin.tmp" "$bin"
echo "$bin"
