#!/usr/bin/env bash
# Fill infra/wheelhouse/ with wheels for an offline image build (PIP_OFFLINE=1 in
# infra/Dockerfile.*): the project's dependencies from pyproject.toml plus
# infra/wheelhouse.txt and any requirement given as an argument, built by the host's
# Python (PYTHON, default python3.11: it must be the image's Python version).
# Does nothing when pyproject.toml, wheelhouse.txt and the arguments are unchanged since
# the last fill.
#   infra/wheelhouse.sh                      # or: make wheelhouse
#   infra/wheelhouse.sh 'tensorflow[and-cuda]'   # for an offline Dockerfile.gpu build
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3.11}
dir=$root/infra/wheelhouse
command -v "$python" >/dev/null || { echo "wheelhouse: $python not found (set PYTHON)" >&2; exit 1; }
stamp=$( { cat "$root/pyproject.toml" "$root/infra/wheelhouse.txt"; printf '%s\n' "$@"; "$python" -V; } | sha256sum | cut -c1-16)
if [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "wheelhouse: up to date ($(ls "$dir"/*.whl | wc -l) wheels in infra/wheelhouse)"
  exit 0
fi
mkdir -p "$dir"
echo "wheelhouse: building wheels with $("$python" -V) into infra/wheelhouse"
"$python" -m pip wheel -q --wheel-dir "$dir" -r "$root/infra/wheelhouse.txt" "$@" "$root" >"$dir/.pip.log" 2>&1 \
  || { tail -n 20 "$dir/.pip.log" >&2; echo "wheelhouse: pip failed (log: infra/wheelhouse/.pip.log)" >&2; exit 1; }
rm -f "$dir"/tiktok_tracker-*.whl   # the image builds the project from its source
echo "$stamp" >"$dir/.stamp"
echo "wheelhouse: $(ls "$dir"/*.whl | wc -l) wheels, $(du -sh "$dir" | cut -f1)"
