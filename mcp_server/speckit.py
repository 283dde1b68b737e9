"""spec-kit's tasks.md and tasks_dag.json, read as spec-kit and a Markdown reader see them.

tasks.md lines look like `- [ ] T012 [P] [ASYNC] [US1] Description with path (depends on T010, T011)`;
done is `- [X]`. Tasks are grouped under `## Phase N: ...` headings (any `##` section that holds tasks
is a phase, in document order), which run in order. Lines inside fenced code blocks and HTML comments
are not tasks (the tasks template keeps its examples there); a checkbox line whose first word is no
task id (`- [ ] 1. Check the sign-off`) is skipped with a warning, never a refusal of the file.

tasks_dag.json (the git extension's `tasks-dag.sh generate`, worktree mode) carries
`execution_waves`: lists of task ids (what the generator writes) or of 0-based task indices (what
`adlc.spec.implement.md` documents: indices into the DAG's own `tasks` list, else into tasks.md's).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_server import naming
from mcp_server.errors import InvalidInput

DAG_FILE = "tasks_dag.json"
TASKS_FILE = "tasks.md"

_CHECKBOX = re.compile(r"(?P<indent>\s*)[-*+]\s+\[(?P<mark>[ xX])\]\s+(?P<rest>.*)")
_FIRST_WORD = re.compile(r"(?P<word>\S+)(?:\s+(?P<rest>.*))?")
_TASK_ID = re.compile(r"[A-Za-z]{0,10}[0-9][A-Za-z0-9_-]*")
_TAG = re.compile(r"\[(?P<tag>[A-Za-z0-9_-]{1,20})\]\s*")
_HEADING = re.compile(r" {0,3}(?P<level>#{1,6})\s+(?P<title>.*?)\s*#*\s*")
_PHASE_NUMBER = re.compile(r"Phase\s+(?P<n>[0-9]+)\b", re.IGNORECASE)
_FENCE = re.compile(r" {0,3}(?P<fence>`{3,}|~{3,})")
_DEPENDS = re.compile(r"\(\s*depends\s+on:?\s*(?P<ids>[^)]*)\)", re.IGNORECASE)
_INLINE_CODE = re.compile(r"(`+)(?:.+?)\1")
_ID_LIST_SEP = re.compile(r"\s*(?:,|\band\b|\s)\s*")


@dataclass(frozen=True)
class SpecTask:
    task_id: str
    done: bool
    tags: tuple[str, ...]
    description: str
    line: int
    section: str | None = None
    phase: int = 0
    """The index of the task's phase in `TasksDoc.phases`."""
    depends_on: tuple[str, ...] = ()

    @property
    def is_async(self) -> bool:
        return "ASYNC" in self.tags and "SYNC" not in self.tags

    @property
    def is_open_async(self) -> bool:
        return self.is_async and not self.done

    @property
    def execution_mode(self) -> str:
        """spec-kit's execution mode: ASYNC for an [ASYNC] task, else SYNC (human in the loop)."""
        return "ASYNC" if self.is_async else "SYNC"


@dataclass(frozen=True)
class Phase:
    title: str
    line: int

    @property
    def label(self) -> str:
        """`Phase 2` for `## Phase 2: Foundational`, else the heading itself."""
        match = _PHASE_NUMBER.match(self.title)
        return f"Phase {match.group('n')}" if match else self.title


@dataclass(frozen=True)
class TasksDoc:
    tasks: list[SpecTask]
    phases: list[Phase]
    warnings: list[str] = field(default_factory=list)

    def by_id(self) -> dict[str, SpecTask]:
        return {task.task_id: task for task in self.tasks}


def _without_comments(line: str, in_comment: bool) -> tuple[str, bool]:
    """The line with HTML comments taken out, and whether a comment is still open at its end."""
    out = ""
    while line:
        if in_comment:
            end = line.find("-->")
            if end < 0:
                return out, True
            line, in_comment = line[end + 3 :], False
        else:
            start = line.find("<!--")
            if start < 0:
                return out + line, False
            out, line, in_comment = out + line[:start], line[start + 4 :], True
    return out, in_comment


def _depends(description: str) -> tuple[str, ...]:
    ids: list[str] = []
    for match in _DEPENDS.finditer(_INLINE_CODE.sub("", description)):
        ids += [i for i in _ID_LIST_SEP.split(match.group("ids").strip()) if i]
    return tuple(dict.fromkeys(ids))


def parse_tasks(text: str, field_name: str = "tasks_file") -> TasksDoc:
    """The tasks, phases and warnings of a tasks.md. Only a task id used twice is refused."""
    tasks: list[SpecTask] = []
    phases: list[Phase] = []
    warnings: list[str] = []
    seen: dict[str, int] = {}
    section: str | None = None
    phase_of_section: int | None = None
    section_line = 0
    fence: str | None = None
    in_comment = False
    for number, raw in enumerate(text.splitlines(), start=1):
        if fence is not None:
            stripped = raw.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = None
            continue
        line, in_comment_after = _without_comments(raw, in_comment)
        opened = _FENCE.match(line) if not in_comment else None
        in_comment = in_comment_after
        if opened:
            fence = opened.group("fence")
            continue
        heading = _HEADING.fullmatch(line)
        if heading:
            if len(heading.group("level")) <= 2:
                section, phase_of_section = heading.group("title"), None
                section_line = number
            continue
        box = _CHECKBOX.fullmatch(line)
        if box is None:
            continue
        first = _FIRST_WORD.fullmatch(box.group("rest").strip())
        word = first.group("word") if first else ""
        if not _TASK_ID.fullmatch(word) or _is_bad_id(word):
            warnings.append(
                f"line {number}: a checkbox that is not a task (no task id such as T012 after the box): skipped"
            )
            continue
        if word in seen:
            raise InvalidInput(
                field_name,
                f"line {number}: task id {word} is used again (first on line {seen[word]})",
                "each task id once",
            )
        seen[word] = number
        if phase_of_section is None:
            phases.append(Phase(title=section or "Tasks", line=section_line if section else 0))
            phase_of_section = len(phases) - 1
        rest = (first.group("rest") if first else None) or ""
        tags: list[str] = []
        while tag := _TAG.match(rest):
            tags.append(tag.group("tag").upper())
            rest = rest[tag.end() :]
        description = rest.strip()
        tasks.append(
            SpecTask(
                task_id=word,
                done=box.group("mark") in "xX",
                tags=tuple(tags),
                description=description,
                line=number,
                section=section,
                phase=phase_of_section,
                depends_on=_depends(description),
            )
        )
    known = set(seen)
    for task in tasks:
        unknown = [d for d in task.depends_on if d not in known]
        if unknown:
            warnings.append(
                f"line {task.line}: {task.task_id} depends on {', '.join(unknown)}, which is not a task of "
                "this file: ignored"
            )
    return TasksDoc(tasks=tasks, phases=phases, warnings=warnings)


def _is_bad_id(word: str) -> bool:
    try:
        naming.validate_task_id(word)
    except InvalidInput:
        return True
    return False


# -- tasks_dag.json ------------------------------------------------------------------------------

_WAVES_ALLOWED = (
    "execution_waves: a list of waves, each a list of task ids or of 0-based task indices "
    "(or an object with `tasks`)"
)


def _wave_items(wave: Any) -> list[Any]:
    if isinstance(wave, Mapping):
        wave = wave.get("tasks", wave.get("task_ids", wave.get("ids")))
    if not isinstance(wave, list):
        raise ValueError("a wave is not a list of task ids")
    items = []
    for item in wave:
        if isinstance(item, Mapping):
            item = item.get("id", item.get("task_id"))
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise ValueError("a wave entry is neither a task id nor a task index")
        items.append(item)
    return items


def _dag_order(data: Mapping[str, Any]) -> list[str] | None:
    """The ids of the DAG's own `tasks` list (what indices point into), if it has one."""
    listed = data.get("tasks")
    if not isinstance(listed, list):
        return None
    ids = [t.get("id") for t in listed if isinstance(t, Mapping)]
    return [i for i in ids if isinstance(i, str)] if len(ids) == len(listed) else None


def parse_waves(
    data: Any, order: Sequence[str] = (), field_name: str = DAG_FILE
) -> list[list[str]] | None:
    """`execution_waves` of a tasks_dag.json document as task ids, or None when it has none.
    An index counts into the document's own `tasks` list when it has one, else into `order`
    (the tasks of tasks.md)."""
    waves = data.get("execution_waves") if isinstance(data, Mapping) else None
    if waves is None:
        return None
    indexed = _dag_order(data) or list(order)
    try:
        if not isinstance(waves, list):
            raise ValueError("execution_waves is not a list")
        resolved = []
        for wave in waves:
            ids = []
            for item in _wave_items(wave):
                if isinstance(item, int):
                    if not 0 <= item < len(indexed):
                        raise ValueError(f"task index {item} is out of range (there are {len(indexed)} tasks)")
                    item = indexed[item]
                ids.append(item)
            resolved.append(ids)
        return resolved
    except ValueError as exc:
        raise InvalidInput(field_name, f"{exc}", _WAVES_ALLOWED) from None


def read_waves(feature_dir: Path, order: Sequence[str] = ()) -> list[list[str]] | None:
    path = feature_dir / DAG_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(DAG_FILE, f"it cannot be read as JSON ({exc})", "a JSON document") from None
    return parse_waves(data, order)


def check_selection(doc: TasksDoc, only: Iterable[str] | None) -> set[str] | None:
    """The selected task ids; refused naming `task_ids` when one is not a task of the file."""
    if only is None:
        return None
    wanted = set(only)
    by_id = doc.by_id()
    unknown = sorted(wanted - set(by_id))
    if unknown:
        raise InvalidInput(
            "task_ids",
            f"no task {', '.join(unknown)} in the tasks file",
            "ids of tasks in the tasks file: " + ", ".join(by_id),
        )
    return wanted
