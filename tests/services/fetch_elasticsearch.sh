#!/usr/bin/env bash
# Fetches the Elasticsearch test distribution zip from Maven Central and unpacks it into the cache.
# Usage: fetch_elasticsearch.sh [VERSION] ; prints the unpacked home directory on stdout.
# A lock file in the cache makes a second concurrent run wait for the first and reuse its result.
set -euo pipefail
version="${1:-${ES_VERSION:-8.19.21}}"
cache="${ECVI_CACHE_DIR:-$HOME/.cache/ecvi-logs}"
home="$cache/elasticsearch-$version"
if [[ -x "$home/bin/elasticsearch" ]]; then echo "$home"; exit 0; fi
mkdir -p "$cache"
exec 9>"$cache/.elasticsearch-$version.lock"
if command -v flock >/dev/null; then flock 9; fi
if [[ -x "$home/bin/elasticsearch" ]]; then echo "$home"; exit 0; fi
tmp="$(mktemp -d "$cache/es-fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mvn -q -B dependency:copy \
  "-Dartifact=org.elasticsearch.distribution.integ-test-zip:elasticsearch:$version:zip" \
  "-DoutputDirectory=$tmp" >&2
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$tmp/elasticsearch-$version.zip" "$tmp/x"
chmod -R a+rX "$tmp/x"
chmod a+x "$tmp/x/elasticsearch-$version/bin/"*
mv "$tmp/x/elasticsearch-$version" "$home"
echo "$home"
