#!/usr/bin/env bash
# Provisions containers/kubernetes-mcp-server (the Go MCP server `make bench` measures the project
# against), pinned, once, and prints the path of its binary:
#   scripts/install-kubernetes-mcp-server.sh -> ~/.cache/agentic-sdlc/kubernetes-mcp-server/<version>/bin/kubernetes-mcp-server
# From the npm package kubernetes-mcp-server-linux-amd64, which ships the release binary (its PyPI
# package downloads the binary at first run, and its Go module is not served here). npm only fetches
# the package: nothing of it runs at install time (--ignore-scripts).
set -euo pipefail

VERSION=0.0.67
PACKAGE=kubernetes-mcp-server-linux-amd64
DIR=${XDG_CACHE_HOME:-$HOME/.cache}/agentic-sdlc/kubernetes-mcp-server/$VERSION
BIN=$DIR/bin/kubernetes-mcp-server

if [[ -x $BIN ]]; then
  printf '%s\n' "$BIN"
  exit 0
fi
[[ $(uname -sm) == "Linux x86_64" ]] || { echo "install-kubernetes-mcp-server: only linux/amd64 is packaged here" >&2; exit 1; }
command -v npm >/dev/null || { echo "install-kubernetes-mcp-server: npm not found; run scripts/install-deps.sh (as root)" >&2; exit 1; }

mkdir -p "$DIR"
exec 9>"$DIR.lock"
flock 9
if [[ ! -x $BIN ]]; then
  echo "install-kubernetes-mcp-server: npm install $PACKAGE@$VERSION into $DIR" >&2
  work=$(mktemp -d "$DIR.tmp.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  npm install --prefix "$work" --no-fund --no-audit --no-save --ignore-scripts --loglevel=error \
    "$PACKAGE@$VERSION" >&2
  found=$(find "$work/node_modules/$PACKAGE" -type f -name 'kubernetes-mcp-server*' -perm -u+x | head -n 1)
  [[ -n $found ]] || found=$(find "$work/node_modules/$PACKAGE/bin" -type f | head -n 1)
  [[ -n $found ]] || { echo "install-kubernetes-mcp-server: no binary in $PACKAGE@$VERSION" >&2; exit 1; }
  mkdir -p "$DIR/bin"
  cp "$found" "$BIN.tmp"
  chmod 0755 "$BIN.tmp"
  got=$("$BIN.tmp" --version 2>&1 || true)
  [[ $got == *"$VERSION"* ]] || { echo "install-kubernetes-mcp-server: the binary says '$got', expected $VERSION" >&2; exit 1; }
  mv "$BIN.tmp" "$BIN"
fi
printf '%s\n' "$BIN"
