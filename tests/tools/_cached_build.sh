# Sourced by the build scripts (build_go_tool.sh, build_kube.sh, tests/services/build_loki.sh): the
# binary cache they share.
# cached_or_lock TOOL VERSION prints the cached binary's path and ends the script when it is there.
# Else it takes the tool's lock in the cache (a second concurrent run waits for the first and then
# reuses its binary) and sets: $bin (where the binary goes: $ECVI_CACHE_DIR/<tool>-<version>,
# default cache ~/.cache/ecvi-logs), $work (a scratch directory in the cache, removed on exit) and
# $start (for the build time the script reports).
cached_or_lock() {
  local tool="$1" version="$2" cache="${ECVI_CACHE_DIR:-$HOME/.cache/ecvi-logs}"
  bin="$cache/$tool-$version"
  if [[ -x "$bin" ]]; then echo "$bin"; exit 0; fi
  mkdir -p "$cache"
  exec 9>"$cache/.$tool-$version.lock"
  if command -v flock >/dev/null; then
    flock -n 9 || { echo "another build of $tool $version is running; waiting for it" >&2; flock 9; }
  fi
  if [[ -x "$bin" ]]; then echo "$bin"; exit 0; fi
  work="$(mktemp -d "$cache/$tool-build.XXXXXX")"
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
  start=$SECONDS
}
