"""spec-kit's `<feature>/tasks_meta.json`, written the way the fork's `tasks-meta-utils.sh` writes it.

The document (as `init` makes it, `add-task`, `start-task`, `complete-task` and `fail-task` fill it):

    {"feature": "001-feature", "created": "2026-01-01T12:00:00+00:00",
     "tasks": {"T012": {"description": "...", "files": "...", "execution_mode": "ASYNC",
                        "status": "pending|in_progress|completed|failed", "agent_type": "general",
                        "started_at": null, "completed_at": null, "result_summary": null,
                        "failure_reason": "... (fail-task only)"}}}

This project adds its own facts of a task (job, branch, environment, head sha, ...) under one key of
its own, `agentic_runner`, and never touches anything else: every change is a read-modify-write of
ONE task entry under an exclusive lock (`tasks_meta.json.lock`), written to a temporary file and
renamed over the document, so concurrent writers (two servers, the fork's scripts between our
writes) keep each other's edits and a reader never sees half a file. A change that changes nothing
writes nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

META_FILE = "tasks_meta.json"
OWN_KEY = "agentic_runner"
STATES = ("pending", "in_progress", "completed", "failed")


def iso(moment: datetime | None) -> str | None:
    """A time as `date -Iseconds` prints it (what the fork's scripts write)."""
    return moment.replace(microsecond=0).isoformat() if moment is not None else None


def write_atomic(path: Path, text: str) -> None:
    """`text` into `path` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `<path>.lock` for a read-modify-write of `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class TasksMeta:
    """The tasks_meta.json of one feature directory."""

    def __init__(self, feature_dir: Path) -> None:
        self.feature_dir = feature_dir
        self.path = feature_dir / META_FILE

    def read(self) -> dict[str, Any]:
        """The document; an absent or unreadable one reads as empty (it is never repaired by us)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def tasks(self) -> dict[str, dict[str, Any]]:
        tasks = self.read().get("tasks")
        if not isinstance(tasks, dict):
            return {}
        return {k: v for k, v in tasks.items() if isinstance(v, dict)}

    def completed(self) -> set[str]:
        return {k for k, v in self.tasks().items() if v.get("status") == "completed"}

    def _fresh(self, now: datetime) -> dict[str, Any]:
        """What the fork's `init` writes."""
        return {"feature": self.feature_dir.name, "created": iso(now), "tasks": {}}

    def update(
        self,
        task_id: str,
        change: Mapping[str, Any],
        *,
        register: Mapping[str, Any],
        own: Mapping[str, Any] | None = None,
        now: datetime,
        lock: bool = True,
    ) -> bool:
        """Set `change` on the task's entry, creating the entry from `register` (the fields the
        fork's `add-task` writes) when the task has none, and merge `own` into its `agentic_runner`
        object. Returns whether the file changed. A document that is not JSON is left alone.
        `lock=False`: the caller holds `locked(self.path)` already."""
        with locked(self.path) if lock else contextlib.nullcontext():
            if self.path.exists():
                try:
                    data = json.loads(self.path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    return False
                if not isinstance(data, dict):
                    return False
            else:
                data = self._fresh(now)
            before = json.dumps(data, sort_keys=True)
            tasks = data.get("tasks")
            if not isinstance(tasks, dict):
                tasks = data["tasks"] = {}
            entry = tasks.get(task_id)
            if not isinstance(entry, dict):
                entry = tasks[task_id] = dict(register)
            entry.update(change)
            if own:
                mine = entry.get(OWN_KEY)
                entry[OWN_KEY] = {**(mine if isinstance(mine, dict) else {}), **own}
            if json.dumps(data, sort_keys=True) == before:
                return False
            write_atomic(self.path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            return True


def registration(description: str, files: str, mode: str) -> dict[str, Any]:
    """A task entry as the fork's `add-task` writes it."""
    return {
        "description": description,
        "files": files,
        "execution_mode": mode,
        "status": "pending",
        "agent_type": "general",
        "started_at": None,
        "completed_at": None,
        "result_summary": None,
    }
