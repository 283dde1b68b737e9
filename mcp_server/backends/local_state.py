"""The state directory of one local task, `.agentic-sdlc/state/<environment>/<job>/`:

    spec.json      the task as spawned (TaskSpec + created_at + deadline); never a secret
    context.json   the task context the runner reads (AGENTIC_TASK_CONTEXT_FILE)
    process.json   the supervisor's pid and process start time (to tell a reused pid apart)
    runner.json    the runner's pid and when it started (written by the supervisor)
    log            the runner's stdout, each line prefixed with an RFC 3339 timestamp
    result.json    the runner's result JSON (AGENTIC_RESULT_FILE)
    exit.json      the runner's exit code and when it ended (written last)
    cancel.json    while a cancel is under way: the pid and start time of the process cancelling
    opencode.db    the agent's OpenCode session database (OPENCODE_DB)

Written by the backend (spec, context, process, cancel) and the supervisor (runner, log, exit); the
runner writes result.json. `TaskFiles.snapshot()` reads each file once for one answer.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_server.logs.positions import parse_timestamped
from mcp_server.logs.results import parse_result, result_from_lines
from mcp_server.models import TaskResult

TAIL_BYTES = 64 * 1024
"""How much of the end of a log is read for its last lines (status, list)."""


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, default=str))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot) and None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if not fields or fields[0] == "Z":
        return None
    return fields[19]


def this_process() -> dict[str, Any]:
    return {"pid": os.getpid(), "start_time": start_time(os.getpid())}


def lives(record: Mapping[str, Any] | None) -> bool:
    """The process a record `{"pid", "start_time"}` names still runs (not a reused pid)."""
    if not record:
        return False
    pid = int(record["pid"])
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it was ours
    return start_time(pid) == record.get("start_time")


@dataclass(frozen=True)
class TaskSnapshot:
    """Everything of one task's state files, each read once. `alive` is read before `exit`, so a run
    that has just ended is seen with its exit record."""

    spec: dict[str, Any]
    process: dict[str, Any] | None
    runner: dict[str, Any] | None
    alive: bool
    exit: dict[str, Any] | None
    cancelling: bool


class TaskFiles:
    """The state directory of one task."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def job(self) -> str:
        return self.path.name

    @property
    def log_path(self) -> Path:
        return self.path / "log"

    def spec(self) -> dict[str, Any] | None:
        return read_json(self.path / "spec.json")

    def process(self) -> dict[str, Any] | None:
        return read_json(self.path / "process.json")

    def exit(self) -> dict[str, Any] | None:
        return read_json(self.path / "exit.json")

    def alive(self) -> bool:
        return lives(self.process())

    def cancelling(self) -> bool:
        """A cancel is under way: the process that started it still runs (one that died midway
        leaves a task that is simply finished)."""
        return lives(read_json(self.path / "cancel.json"))

    def snapshot(self, spec: dict[str, Any] | None = None) -> TaskSnapshot:
        process = self.process()
        alive = lives(process)
        return TaskSnapshot(
            spec=spec if spec is not None else self.spec() or {},
            process=process,
            runner=read_json(self.path / "runner.json"),
            alive=alive,
            exit=self.exit(),
            cancelling=self.cancelling(),
        )

    def read_log(self, offset: int, limit: int) -> tuple[str, bool]:
        """The log from byte `offset`, at most `limit` bytes, and whether it was cut there."""
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(offset)
                data = handle.read(limit + 1)
        except OSError:
            return "", False
        return data[:limit].decode("utf-8", errors="replace"), len(data) > limit

    def tail_texts(self) -> list[str]:
        """The texts of the log's last lines (at most TAIL_BYTES of it)."""
        try:
            size = self.log_path.stat().st_size
        except OSError:
            return []
        start = max(0, size - TAIL_BYTES)
        body, _cut = self.read_log(start, TAIL_BYTES)
        if start > 0:
            body = body.partition("\n")[2]  # the first line may be cut
        return [line.text for line in parse_timestamped(self.job, body)]

    def result(self, tail: list[str] | None = None) -> TaskResult | None:
        """The runner's result file, else its result line at the end of the log."""
        try:
            text = (self.path / "result.json").read_text()
        except OSError:
            text = ""
        return parse_result(text) or result_from_lines((tail if tail is not None else self.tail_texts())[-5:])
