#!/usr/bin/env bash
# Installs one standalone executable that an npm package ships, pinned, once, into the cache, and
# prints its path (scripts/install-opencode.sh and scripts/install-kubernetes-mcp-server.sh use it):
#   scripts/install-npm-binary.sh NAME PACKAGE VERSION FILE [--ignore-scripts]
#     -> ${XDG_CACHE_HOME:-~/.cache}/agentic-sdlc/NAME/VERSION/bin/NAME
# FILE: the executable inside the installed package (node_modules/PACKAGE/FILE). The binary's
# `--version` must name VERSION. --ignore-scripts: run nothing of the package at install time.
set -euo pipefail

[[ $# -ge 4 ]] || { echo "usage: $0 NAME PACKAGE VERSION FILE [--ignore-scripts]" >&2; exit 2; }
NAME=$1 PACKAGE=$2 VERSION=$3 FILE=$4
shift 4
DIR=${XDG_CACHE_HOME:-$HOME/.cache}/agentic-sdlc/$NAME/$VERSION
BIN=$DIR/bin/$NAME

if [[ -x $BIN ]]; then
  printf '%s\n' "$BIN"
  exit 0
fi
command -v npm >/dev/null || { echo "install-$NAME: npm not found; run scripts/install-deps.sh (as root)" >&2; exit 1; }

mkdir -p "$DIR"
exec 9>"$DIR.lock"
flock 9
if [[ ! -x $BIN ]]; then
  echo "install-$NAME: npm install $PACKAGE@$VERSION into $DIR" >&2
  work=$(mktemp -d "$DIR.tmp.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  npm install --prefix "$work" --no-fund --no-audit --no-save --loglevel=error "$@" "$PACKAGE@$VERSION" >&2
  found=$work/node_modules/$PACKAGE/$FILE
  [[ -f $found ]] || { echo "install-$NAME: $PACKAGE@$VERSION has no $FILE" >&2; exit 1; }
  mkdir -p "$DIR/bin"
  cp "$found" "$BIN.tmp"
  chmod 0755 "$BIN.tmp"
  got=$("$BIN.tmp" --version 2>&1 || true)
  [[ $got == *"$VERSION"* ]] || { echo "install-$NAME: the binary says '$got', expected $VERSION" >&2; exit 1; }
  mv "$BIN.tmp" "$BIN"
fi
printf '%s\n' "$BIN"
