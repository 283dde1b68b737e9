"""The task runner: what runs inside an agent pod (and, unchanged, as a local backend process).

`main(argv)` is `agentic-runner run-task` (also `python -m mcp_server.runner`)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["git-push"]:
        # SIGTERM is noted from the first moment (before the heavier imports): git-push then answers
        # what is pending and ends, instead of dying with a request unanswered
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        from mcp_server.runner.gitpush import main as push_main

        return push_main(stop=stop)
    from mcp_server.runner.main import main as run_main

    return run_main(argv)


__all__ = ["main"]
