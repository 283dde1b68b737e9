"""The task runner: what runs inside an agent pod (and, unchanged, as a local backend process).

`main(argv)` is `agentic-runner run-task` (also `python -m mcp_server.runner`)."""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from mcp_server.runner.main import main as run_main

    return run_main(argv)


__all__ = ["main"]
