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
[[ $(uname -sm) == "Linux x86_64" ]] || { echo "install-kubernetes-mcp-server: only linux/amd64 is packaged here" >&2; exit 1; }
exec "$(dirname "$0")/install-npm-binary.sh" kubernetes-mcp-server "$PACKAGE" "$VERSION" \
  "bin/$PACKAGE" --ignore-scripts
