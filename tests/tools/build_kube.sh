#!/usr/bin/env bash
# Builds kube-apiserver or etcd from its Go module (through the Go module proxy) and caches the binary.
# Usage: build_kube.sh kube-apiserver|etcd ; prints the binary's path on stdout (build output goes to stderr).
# Versions: KUBE_APISERVER_VERSION (k8s.io/kubernetes release, default v1.34.4; its staging modules
# k8s.io/api, apimachinery, ... are taken at the matching v0.X.Y, or KUBE_STAGING_VERSION) and
# ETCD_VERSION (go.etcd.io/etcd/server/v3, default v3.6.16). The cache is $ECVI_CACHE_DIR
# (default ~/.cache/ecvi-logs), the binary <tool>-<version>; a lock file makes a second concurrent
# run wait for the first and reuse its binary.
# Both modules replace sibling modules with local paths that their module zips do not contain
# (k8s.io/kubernetes: ./staging/src/k8s.io/*, etcd server: ../api, ../pkg, ...): the copy drops
# those replaces and requires the published modules of the same release instead.
set -euo pipefail
tool="${1:?usage: build_kube.sh kube-apiserver|etcd}"
case "$tool" in
  kube-apiserver)
    module=k8s.io/kubernetes; version="${KUBE_APISERVER_VERSION:-v1.34.4}"; pkg=./cmd/kube-apiserver
    [[ "$version" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || { echo "KUBE_APISERVER_VERSION must look like v1.X.Y" >&2; exit 2; }
    staging="${KUBE_STAGING_VERSION:-v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}}"
    # What hack/lib/version.sh sets, so that /version names the release.
    ldflags="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=${BASH_REMATCH[1]}"
      ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
    done ;;
  etcd)
    module=go.etcd.io/etcd/server/v3; version="${ETCD_VERSION:-v3.6.16}"; pkg=.; staging=""
    ldflags="-s -w" ;;
  *) echo "unknown tool: $tool" >&2; exit 2 ;;
esac
source "$(dirname "$0")/_cached_build.sh"
cached_or_lock "$tool" "$version"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" CGO_ENABLED=0 GOWORK=off GOFLAGS="-mod=mod -buildvcs=false"
mkdir "$work/scratch"
(cd "$work/scratch" && go mod init scratch >/dev/null 2>&1 && go mod download -json "$module@$version") > "$work/info.json"
src="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Dir"])' "$work/info.json")"
cp -r "$src/." "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"
# vendor/ (a stub in the module zip) and go.work would override the module graph.
rm -rf vendor go.work go.work.sum
# Every replace to a local directory (./staging/..., ../api, ...) points at a module the zip lacks.
go mod edit -json > "$work/gomod.json"
python3 - "$work/gomod.json" > "$work/local-replaces" <<'EOF'
import json, sys
mod = json.load(open(sys.argv[1]))
for rep in mod.get("Replace") or []:
    path = rep["New"]["Path"]
    if rep["New"].get("Version") is None and (path.startswith("./staging/") or path.startswith("../")):
        print(rep["Old"]["Path"])
EOF
while read -r dep; do
  [[ -n "$dep" ]] || continue
  edit=(-dropreplace="$dep")
  # k8s.io/kubernetes requires its staging modules at v0.0.0; the published ones carry the release.
  [[ -n "$staging" ]] && edit+=(-require="$dep@$staging")
  go mod edit "${edit[@]}"
done < "$work/local-replaces"
echo "dropped $(wc -l < "$work/local-replaces") local replaces of $module@$version" >&2
go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" "$pkg" >&2
mv "$bin.tmp" "$bin"
echo "built $tool $version in $((SECONDS - start)) s: $bin" >&2
echo "$bin"
