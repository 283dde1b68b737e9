"""spec-kit files: tasks.md, tasks_dag.json, tasks_meta.json and the `.async_state/` hand-off files.

tasks.md lines look like `- [ ] T012 [P] [ASYNC] [US1] Description with path`; done is `- [X]`.
tasks_dag.json carries `execution_waves` (lists of task ids, or objects with `tasks`/`task_ids`).
The async hand-off lives in `<feature>/.async_state/`: `delegation_prompts/<id>.md` when a task is
handed to an agent, `delegation_completed/<id>.txt` or `delegation_errors/<id>.txt` once it finished.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_server import naming
from mcp_server.errors import InvalidInput
from mcp_server.models import TaskHandle, TaskStatus

_TASK_LINE = re.compile(r"\s*[-*]\s+\[(?P<mark>[ xX])\]\s+(?P<id>\S+)(?:\s+(?P<rest>.*))?")
_LOOKS_LIKE_ID = re.compile(r"[A-Za-z]{0,10}[0-9]")
_TAG = re.compile(r"\[(?P<tag>[A-Za-z0-9_-]{1,20})\]\s*")
_HEADING = re.compile(r"#{1,6}\s+(?P<title>.*)")

DAG_FILE = "tasks_dag.json"
META_FILE = "tasks_meta.json"
STATE_DIR = ".async_state"


@dataclass(frozen=True)
class SpecTask:
    task_id: str
    done: bool
    tags: tuple[str, ...]
    description: str
    line: int
    section: str | None = None

    @property
    def is_async(self) -> bool:
        return "ASYNC" in self.tags and "SYNC" not in self.tags

    @property
    def is_open_async(self) -> bool:
        return self.is_async and not self.done


def parse_tasks(text: str, field: str = "tasks_file") -> list[SpecTask]:
    """The tasks of a tasks.md. A line that looks like a task but whose id is not allowed is refused."""
    tasks: list[SpecTask] = []
    seen: dict[str, int] = {}
    section = None
    for number, line in enumerate(text.splitlines(), start=1):
        heading = _HEADING.fullmatch(line.strip())
        if heading:
            section = heading.group("title").strip()
            continue
        match = _TASK_LINE.fullmatch(line)
        if match is None or not _LOOKS_LIKE_ID.match(match.group("id")):
            continue
        task_id = match.group("id")
        try:
            naming.validate_task_id(task_id, field)
        except InvalidInput as exc:
            raise InvalidInput(
                field, f"line {number}: the task id {exc.problem.removeprefix('it ')}", exc.allowed
            ) from None
        if task_id in seen:
            raise InvalidInput(
                field,
                f"line {number}: task id {task_id} is used again (first on line {seen[task_id]})",
                "each task id once",
            )
        seen[task_id] = number
        rest = match.group("rest") or ""
        tags: list[str] = []
        while tag := _TAG.match(rest):
            tags.append(tag.group("tag").upper())
            rest = rest[tag.end() :]
        tasks.append(
            SpecTask(
                task_id=task_id,
                done=match.group("mark") in "xX",
                tags=tuple(tags),
                description=rest.strip(),
                line=number,
                section=section,
            )
        )
    return tasks


def _wave_ids(wave: Any) -> list[str]:
    if isinstance(wave, Mapping):
        wave = wave.get("tasks", wave.get("task_ids", wave.get("ids")))
    if not isinstance(wave, list):
        raise ValueError("a wave is not a list of task ids")
    ids = []
    for item in wave:
        if isinstance(item, Mapping):
            item = item.get("id", item.get("task_id"))
        if not isinstance(item, str):
            raise ValueError("a wave entry is not a task id")
        ids.append(item)
    return ids


def parse_waves(data: Any, field: str = DAG_FILE) -> list[list[str]] | None:
    """`execution_waves` of a tasks_dag.json document, or None when it has none."""
    waves = data.get("execution_waves") if isinstance(data, Mapping) else None
    if waves is None:
        return None
    try:
        if not isinstance(waves, list):
            raise ValueError("execution_waves is not a list")
        return [_wave_ids(wave) for wave in waves]
    except ValueError as exc:
        raise InvalidInput(
            field,
            f"{exc}",
            "execution_waves: a list of waves, each a list of task ids (or an object with `tasks`)",
        ) from None


def read_waves(feature_dir: Path) -> list[list[str]] | None:
    path = feature_dir / DAG_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(DAG_FILE, f"it cannot be read as JSON ({exc})", "a JSON document") from None
    return parse_waves(data)


def open_async_waves(
    tasks: list[SpecTask], waves: list[list[str]] | None, only: Iterable[str] | None = None
) -> list[list[SpecTask]]:
    """The open [ASYNC] tasks, wave by wave (one wave without a DAG; tasks the DAG does not name go last).
    Empty waves are dropped."""
    by_id = {task.task_id: task for task in tasks}
    wanted = set(only) if only is not None else None
    if wanted is not None:
        unknown = sorted(wanted - set(by_id))
        if unknown:
            raise InvalidInput(
                "task_ids",
                f"no task {', '.join(unknown)} in the tasks file",
                "ids of tasks in the tasks file: " + ", ".join(by_id),
            )

    def keep(task: SpecTask) -> bool:
        return task.is_open_async and (wanted is None or task.task_id in wanted)

    ordered: list[list[SpecTask]] = []
    placed: set[str] = set()
    for wave in waves or []:
        ordered.append([by_id[i] for i in wave if i in by_id and keep(by_id[i]) and i not in placed])
        placed.update(wave)
    ordered.append([task for task in tasks if keep(task) and task.task_id not in placed])
    return [wave for wave in ordered if wave]


def waves_with_all(tasks: list[SpecTask], waves: list[list[str]] | None) -> list[list[SpecTask]]:
    """Every task (open or not, ASYNC or not) wave by wave, for gating later waves on earlier ones."""
    by_id = {task.task_id: task for task in tasks}
    if not waves:
        return [tasks]
    ordered = [[by_id[i] for i in wave if i in by_id] for wave in waves]
    placed = {i for wave in waves for i in wave}
    ordered.append([task for task in tasks if task.task_id not in placed])
    return ordered


# -- .async_state and tasks_meta.json -----------------------------------------------------------


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class AsyncState:
    """The `.async_state/` files and `tasks_meta.json` of one feature directory."""

    feature_dir: Path

    @property
    def root(self) -> Path:
        return self.feature_dir / STATE_DIR

    def prompt_path(self, task_id: str) -> Path:
        return self.root / "delegation_prompts" / f"{naming.validate_task_id(task_id)}.md"

    def completed_path(self, task_id: str) -> Path:
        return self.root / "delegation_completed" / f"{naming.validate_task_id(task_id)}.txt"

    def error_path(self, task_id: str) -> Path:
        return self.root / "delegation_errors" / f"{naming.validate_task_id(task_id)}.txt"

    def write_prompt(self, task: SpecTask, handle: TaskHandle) -> None:
        text = (
            f"# {task.task_id}: delegated to an agent\n\n{task.description}\n\n"
            f"- environment: {handle.environment} (namespace {handle.namespace})\n"
            f"- job: {handle.job}\n- base branch: {handle.base_branch}\n- task branch: {handle.branch}\n"
            f"- tags: {' '.join(f'[{t}]' for t in task.tags)}\n"
        )
        _write_atomic(self.prompt_path(task.task_id), text)

    def record(self, status: TaskStatus) -> bool:
        """Write completed/<id>.txt (succeeded) or errors/<id>.txt (failed, timed out, cancelled) once
        the task is finished. Returns whether a file was written."""
        if not status.finished:
            return False
        result = status.result
        lines = [
            f"task: {status.task_id}",
            f"phase: {status.phase}",
            f"branch: {status.branch}",
            f"job: {status.job}",
        ]
        if result is not None:
            lines += [
                f"status: {result.status}",
                f"commits: {result.commits}",
                f"pushed: {result.pushed}",
                f"head: {result.head_sha}",
                f"files: {', '.join(result.files_changed)}",
                f"summary: {result.summary or ''}",
            ]
            if result.error:
                lines.append(f"error: {result.error}")
        elif status.reason:
            lines.append(f"reason: {status.reason}")
        target, other = (
            (self.completed_path, self.error_path)
            if status.phase == "succeeded"
            else (self.error_path, self.completed_path)
        )
        _write_atomic(target(status.task_id), "\n".join(lines) + "\n")
        other(status.task_id).unlink(missing_ok=True)
        self.update_meta(
            status.task_id,
            {"status": "completed" if status.phase == "succeeded" else "failed", "phase": status.phase},
        )
        return True

    def update_meta(self, task_id: str, fields: Mapping[str, Any]) -> None:
        path = self.feature_dir / META_FILE
        data: dict[str, Any] = {}
        if path.is_file():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                data = loaded if isinstance(loaded, dict) else {}
            except ValueError:
                data = {}
        tasks = data.setdefault("tasks", {})
        if not isinstance(tasks, dict):
            tasks = data["tasks"] = {}
        entry = tasks.setdefault(task_id, {})
        if isinstance(entry, dict):
            entry.update({"execution": "async", **fields})
        _write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
