#!/usr/bin/env bash
# Packages the chart and every release as Helm chart archives, ready for `helm push ... oci://...`:
#   scripts/package-charts.sh OUT_DIR [--image-repository REPOSITORY]
#
# OUT_DIR gets agentic-sdlc-agent-runner-<version>.tgz and agentic-sdlc-agent-runner-<env>-<version>.tgz
# (their paths are printed, one a line). Each release is packaged with the chart it vendors rebuilt
# from chart/ (`helm dependency update`), so both carry the same defaults. --image-repository sets
# the chart's default image.repository in the packages (the release pipeline passes
# ghcr.io/<owner>/agentic-sdlc-agent-runner, where it pushed the image); chart/ itself is not changed.
# helm is $HELM, else `helm` on PATH.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HELM=${HELM:-helm}
DEFAULT_REPOSITORY=ghcr.io/agentic-sdlc/agentic-sdlc-agent-runner

die() { printf 'package-charts: %s\n' "$*" >&2; exit 2; }
usage="usage: scripts/package-charts.sh OUT_DIR [--image-repository REPOSITORY]"

out="" repository=""
while (($#)); do
  case $1 in
    --image-repository) (($# >= 2)) || die "--image-repository needs a value ($usage)"; repository=$2; shift 2 ;;
    -h | --help) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) die "unknown option '$1' ($usage)" ;;
    *) [[ -z $out ]] || die "one OUT_DIR only, got '$out' and '$1' ($usage)"; out=$1; shift ;;
  esac
done
[[ -n $out ]] || die "$usage"
# An image reference without tag or digest: registry/path, lowercase (OCI distribution's rules).
if [[ -n $repository ]] && ! [[ $repository =~ ^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)+$ ]]; then
  die "--image-repository '$repository' is not an image repository without tag or digest, in lowercase (e.g. ghcr.io/my-org/agentic-sdlc-agent-runner)"
fi
command -v "$HELM" >/dev/null || die "helm not found (set HELM=/path/to/helm; scripts/testenv.sh build makes one)"

work=$(mktemp -d "${TMPDIR:-/tmp}/package-charts.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The same layout as the repository, so each release's file://../../chart resolves to the copy.
cp -R "$ROOT/chart" "$work/chart"
mkdir "$work/releases"
for rel in "$ROOT"/releases/*/; do cp -R "$rel" "$work/releases/"; done
if [[ -n $repository ]]; then
  values=$work/chart/values.yaml
  grep -qx "  repository: $DEFAULT_REPOSITORY" "$values" \
    || die "chart/values.yaml has no line '  repository: $DEFAULT_REPOSITORY' to replace"
  sed -i "s|^  repository: $DEFAULT_REPOSITORY\$|  repository: $repository|" "$values"
fi

mkdir -p "$out"
package() { "$HELM" package "$1" --destination "$out" | sed -n 's/^Successfully packaged chart and saved it to: //p'; }
package "$work/chart"
for rel in "$work"/releases/*/; do
  rm -f "$rel"charts/*.tgz
  "$HELM" dependency update --skip-refresh "$rel" >/dev/null
  package "$rel"
done
