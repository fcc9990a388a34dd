#!/usr/bin/env bash
# Fetches pyVRL (Vector's VRL compiler and runtime as a Python extension, from PyPI) into the
# cache, outside the project's virtualenv; prints the directory to put on sys.path.
# The tests compile and run the VRL programs of `ecvi-logs render vector` with it.
set -euo pipefail
version="${PYVRL_VERSION:-0.0.2}"
python="${PYTHON:-$(cd "$(dirname "$0")/../.." && pwd)/.venv/bin/python}"
cache="${ECVI_CACHE_DIR:-$HOME/.cache/ecvi-logs}"
target="$cache/pyvrl-$version"
if [[ -f "$target/.complete" ]]; then echo "$target"; exit 0; fi
mkdir -p "$cache"
exec 9>"$cache/.pyvrl-$version.lock"
if command -v flock >/dev/null; then flock 9; fi
if [[ -f "$target/.complete" ]]; then echo "$target"; exit 0; fi
rm -rf "$target"
"$python" -m pip install -q --no-deps --target "$target" "pyvrl==$version" >&2
touch "$target/.complete"
echo "$target"
