#!/usr/bin/env bash
# Provisions the pinned OpenCode (npm opencode-ai, version in container/opencode.version) for host
# tests and the local backend, once, and prints the path of its standalone binary:
#   scripts/install-opencode.sh            -> ~/.cache/agentic-sdlc/opencode/<version>/bin/opencode
# The binary needs only libc; npm (scripts/install-deps.sh installs it) only runs the installer.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=$(<"$ROOT/container/opencode.version")
DIR=${XDG_CACHE_HOME:-$HOME/.cache}/agentic-sdlc/opencode/$VERSION
BIN=$DIR/bin/opencode

if [[ -x $BIN ]]; then
  printf '%s\n' "$BIN"
  exit 0
fi
command -v npm >/dev/null || { echo "install-opencode: npm not found; run scripts/install-deps.sh (as root)" >&2; exit 1; }

mkdir -p "$DIR"
exec 9>"$DIR.lock"
flock 9
if [[ ! -x $BIN ]]; then
  echo "install-opencode: npm install opencode-ai@$VERSION into $DIR" >&2
  work=$(mktemp -d "$DIR.tmp.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  npm install --prefix "$work" --no-fund --no-audit --no-save --loglevel=error "opencode-ai@$VERSION" >&2
  # postinstall links the platform's binary to bin/opencode.exe; copy it out, the rest is not needed.
  mkdir -p "$DIR/bin"
  cp "$work/node_modules/opencode-ai/bin/opencode.exe" "$BIN.tmp"
  chmod 0755 "$BIN.tmp"
  got=$("$BIN.tmp" --version)
  [[ $got == "$VERSION" ]] || { echo "install-opencode: installed binary says $got, expected $VERSION" >&2; exit 1; }
  mv "$BIN.tmp" "$BIN"
fi
printf '%s\n' "$BIN"
