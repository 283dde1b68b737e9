#!/usr/bin/env bash
# Sets the one version everywhere it is written, then refreshes the releases' vendored chart:
#   scripts/set-version.sh X.Y.Z
#
# mcp_server/__init__.py (__version__: the package, `agentic-runner --version`, the MCP serverInfo,
# the image's org.opencontainers.image.version), chart/Chart.yaml (version, appVersion), and for each
# release releases/*/Chart.yaml (version, appVersion, the chart dependency's version), values.yaml
# (image.tag) and charts/ + Chart.lock (`helm dependency update`, with $HELM or `helm` on PATH), and the
# versions in the install commands of README.md and releases/README.md.
# tests/unit/test_versions.py fails when any of them drifts. CHANGELOG.md gets its section by hand.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HELM=${HELM:-helm}
new=${1:-}

die() { printf 'set-version: %s\n' "$*" >&2; exit 1; }
# X.Y.Z: the one form that PEP 440 (Python), SemVer (Helm) and the image tag all write alike
# (a pre-release is 1.0.0rc1 for Python but 1.0.0-rc1 for Helm).
[[ $new =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]] \
  || die "version '$new' is not X.Y.Z (digits, no leading zeros, no pre-release; usage: scripts/set-version.sh X.Y.Z)"
command -v "$HELM" >/dev/null || die "helm not found (set HELM=/path/to/helm; scripts/testenv.sh build makes one)"

# replace FILE SED-EXPRESSION EXPECTED: apply, then fail unless a line matches EXPECTED.
replace() {
  sed -i -E "$2" "$1"
  grep -qE "$3" "$1" || die "$1 has no line to change ($2)"
}

old=$(sed -nE 's/^__version__ = "([^"]+)"$/\1/p' "$ROOT/mcp_server/__init__.py")
[[ -n $old ]] || die "mcp_server/__init__.py has no line '__version__ = \"X.Y.Z\"'"
replace "$ROOT/mcp_server/__init__.py" "s/^__version__ = \"[^\"]*\"$/__version__ = \"$new\"/" "^__version__ = \"$new\"$"
replace "$ROOT/chart/Chart.yaml" "s/^version: .*/version: $new/" "^version: $new$"
replace "$ROOT/chart/Chart.yaml" "s/^appVersion: .*/appVersion: \"$new\"/" "^appVersion: \"$new\"$"
for rel in "$ROOT"/releases/*/; do
  replace "$rel/Chart.yaml" "s/^version: .*/version: $new/" "^version: $new$"
  replace "$rel/Chart.yaml" "s/^appVersion: .*/appVersion: \"$new\"/" "^appVersion: \"$new\"$"
  replace "$rel/Chart.yaml" "s/^    version: .*/    version: $new/" "^    version: $new$"
  replace "$rel/values.yaml" "s/^    tag: .*/    tag: \"$new\"/" "^    tag: \"$new\"$"
  rm -f "$rel"/charts/*.tgz
  "$HELM" dependency update --skip-refresh "$rel" >/dev/null
done
# The install commands of the docs (git tag, wheel name, oci:// --version, image tag) name the version.
for doc in "$ROOT/README.md" "$ROOT/releases/README.md"; do
  sed -i -E "s/(^|[^0-9.])${old//./\\.}([^0-9.]|\.[^0-9]|\.?$)/\1$new\2/g" "$doc"
done
printf 'set-version: %s everywhere; add its section to CHANGELOG.md\n' "$new" >&2
