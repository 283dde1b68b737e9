"""The runner's stdout: its own lines as JSON with a phase, OpenCode's lines passed through, every
line redacted, one writer for all threads.

    {"ts": "2026-01-01T00:00:00.000Z", "level": "info", "phase": "clone", "msg": "..."}
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from mcp_server.runner.redact import Redactor

Phase = Literal["setup", "clone", "branch", "agent", "commit", "push", "done"]
PHASES: tuple[Phase, ...] = ("setup", "clone", "branch", "agent", "commit", "push", "done")
Level = Literal["debug", "info", "warning", "error"]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Output:
    """Writes whole lines to a stream under a lock; every line goes through the redactor."""

    def __init__(self, redactor: Redactor, stream: TextIO | None = None) -> None:
        self._redact = redactor
        self._stream = stream if stream is not None else sys.stdout
        self._lock = threading.RLock()  # re-entrant: a signal handler may log mid-line
        self._closed = False

    @property
    def redact(self) -> Redactor:
        return self._redact

    def set_redactor(self, redactor: Redactor) -> None:
        with self._lock:
            self._redact = redactor

    def log(self, phase: Phase, msg: str, level: Level = "info", **fields: Any) -> None:
        record: dict[str, Any] = {"ts": now_iso(), "level": level, "phase": phase, "msg": msg}
        record.update({k: v for k, v in fields.items() if v is not None})
        self.line(json.dumps(record, ensure_ascii=False, default=str))

    def line(self, text: str) -> None:
        """One raw line (OpenCode's events, the result marker), redacted."""
        text = text.rstrip("\r\n").replace("\n", "\\n")
        with self._lock:
            if self._closed:
                return
            try:
                self._stream.write(self._redact(text) + "\n")
                self._stream.flush()
            except (BrokenPipeError, OSError, ValueError):
                # nobody reads stdout any more (a supervisor died): the task goes on, the result
                # still goes to the result file
                self._closed = True
