#!/usr/bin/env bash
# The one version of the package, the agent image and the charts (docs/releasing.md):
#   scripts/version.sh                 print it (mcp_server/__init__.py's __version__)
#   scripts/version.sh --check-tag T   exit 1 unless the git tag T is "v<version>" (the release pipeline)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
INIT=$ROOT/mcp_server/__init__.py

version=$(sed -nE 's/^__version__ = "([^"]+)"$/\1/p' "$INIT")
[[ -n $version ]] || { echo "version: no line '__version__ = \"X.Y.Z\"' in $INIT" >&2; exit 1; }

case "${1:-}" in
  "") printf '%s\n' "$version" ;;
  --check-tag)
    tag=${2:-}
    if [[ $tag != "v$version" ]]; then
      echo "version: tag '$tag' does not match the package version $version (expected tag v$version);" \
        "bump it with scripts/set-version.sh or tag the right commit" >&2
      exit 1
    fi
    printf '%s\n' "$version" ;;
  -h | --help) sed -n '2,4s/^# \{0,1\}//p' "$0" ;;
  *) echo "version: unknown argument '$1' (allowed: --check-tag TAG, --help)" >&2; exit 2 ;;
esac
