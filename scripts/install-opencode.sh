#!/usr/bin/env bash
# Provisions the pinned OpenCode (npm opencode-ai, version in container/opencode.version) for host
# tests and the local backend, once, and prints the path of its standalone binary:
#   scripts/install-opencode.sh            -> ~/.cache/agentic-sdlc/opencode/<version>/bin/opencode
# The binary needs only libc; npm (scripts/install-deps.sh installs it) only runs the installer
# (its postinstall links the platform's binary to bin/opencode.exe).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
exec "$ROOT/scripts/install-npm-binary.sh" opencode opencode-ai "$(<"$ROOT/container/opencode.version")" bin/opencode.exe
