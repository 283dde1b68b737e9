"""Human log output like stern: one stream for many tasks, a coloured `[T012] ` prefix per task."""

from __future__ import annotations

from mcp_server.models import LogLine

_COLORS = (36, 33, 32, 35, 34, 31, 96, 93, 92, 95, 94, 91)


class Prefixer:
    """A coloured `[T012] ` prefix per task; a task keeps its colour for the whole stream."""

    def __init__(self, color: bool) -> None:
        self.color = color
        self._assigned: dict[str, int] = {}

    def prefix(self, task_id: str) -> str:
        if not self.color:
            return f"[{task_id}] "
        code = self._assigned.setdefault(task_id, _COLORS[len(self._assigned) % len(_COLORS)])
        return f"\x1b[{code}m[{task_id}]\x1b[0m "

    def format(self, line: LogLine) -> str:
        return self.prefix(line.task_id) + line.text
