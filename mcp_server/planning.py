"""Which [ASYNC] tasks of a tasks.md to spawn now, which wait and for what: a pure function of the
tasks, their order and what is done already (no I/O, no backend).

The order is spec-kit's: the waves of tasks_dag.json when the feature has one, else the phases of
tasks.md in document order ("complete each phase before moving to the next"); on top of either,
a task's own `(depends on T012, T013)`. A task starts only when every task of the earlier
waves/phases ([SYNC] ones included) and every task it depends on is done: `[X]` in tasks.md,
`completed` in tasks_meta.json, or an agent task that succeeded. At most `max_parallel` of the
feature's tasks are pending or running at once; a task that exists already is returned as it is,
never started twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from mcp_server import speckit
from mcp_server.models import PlannedTask, TaskStatus


@dataclass(frozen=True)
class Ordering:
    """The tasks in groups that run one after the other: waves of the DAG, or phases."""

    groups: list[list[speckit.SpecTask]]
    names: list[str]

    @classmethod
    def of(cls, doc: speckit.TasksDoc, dag_waves: list[list[str]] | None) -> Ordering:
        if not dag_waves:
            groups = [[t for t in doc.tasks if t.phase == k] for k in range(len(doc.phases))]
            return cls(groups, [phase.label for phase in doc.phases])
        by_id = doc.by_id()
        placed: set[str] = set()
        groups = []
        for wave in dag_waves:
            groups.append([by_id[i] for i in wave if i in by_id and i not in placed])
            placed.update(wave)
        groups.append([t for t in doc.tasks if t.task_id not in placed])
        return cls(groups, [f"wave {k + 1}" for k in range(len(groups))])

    def group_of(self) -> dict[str, int]:
        return {task.task_id: k for k, group in enumerate(self.groups) for task in group}


@dataclass(frozen=True)
class SpawnPlan:
    waves: list[list[str]]
    """The open [ASYNC] task ids (of the selection), group by group."""
    entries: list[PlannedTask]
    """Each selected task with its action: spawn, exists or wait (with what it waits for)."""

    def ids(self, action: str) -> list[str]:
        return [entry.task_id for entry in self.entries if entry.action == action]


def done_ids(
    doc: speckit.TasksDoc, existing: Mapping[str, TaskStatus], completed: Set[str] = frozenset()
) -> set[str]:
    """Tasks that are done: [X] in tasks.md, completed in tasks_meta.json, or succeeded agent tasks."""
    succeeded = {i for i, s in existing.items() if s.phase == "succeeded"}
    return {t.task_id for t in doc.tasks if t.done or t.task_id in completed or t.task_id in succeeded}


def blockers(
    task: speckit.SpecTask, ordering: Ordering, group: int, done: Set[str]
) -> tuple[list[str], str | None]:
    """The tasks `task` still waits for, and why, in words (None: it waits for nothing)."""
    earlier = [t.task_id for g in ordering.groups[:group] for t in g if t.task_id not in done]
    deps = [d for d in task.depends_on if d not in done and d in ordering.group_of()]
    reasons = []
    if earlier:
        first = next(k for k, g in enumerate(ordering.groups) if any(t.task_id in earlier for t in g))
        open_ids = [t.task_id for t in ordering.groups[first] if t.task_id not in done]
        reasons.append(f"{ordering.names[first]} is not finished ({', '.join(open_ids)})")
    if deps:
        reasons.append(f"it depends on {', '.join(deps)}")
    return list(dict.fromkeys(earlier + deps)), "; ".join(reasons) or None


def plan_spawns(
    doc: speckit.TasksDoc,
    dag_waves: list[list[str]] | None,
    existing: Mapping[str, TaskStatus],
    max_parallel: int,
    only: Iterable[str] | None = None,
    completed: Set[str] = frozenset(),
) -> SpawnPlan:
    """The plan for the open [ASYNC] tasks (`only`: of these ids) given the tasks that exist on the
    feature branch already (`existing`, by task id) and those tasks_meta.json says are completed."""
    wanted = speckit.check_selection(doc, only)
    ordering = Ordering.of(doc, dag_waves)
    done = done_ids(doc, existing, completed)
    active = sum(1 for s in existing.values() if s.phase in ("pending", "running"))

    entries: list[PlannedTask] = []
    waves: list[list[str]] = []
    for k, group in enumerate(ordering.groups):
        selected = [t for t in group if t.is_open_async and (wanted is None or t.task_id in wanted)]
        if selected:
            waves.append([t.task_id for t in selected])
        for task in selected:
            entry = PlannedTask(
                task_id=task.task_id,
                wave=k + 1,
                phase=ordering.names[k],
                description=task.description,
                action="spawn",
            )
            waiting, why = blockers(task, ordering, k, done)
            if task.task_id in existing:
                entry.action, entry.reason = "exists", f"phase {existing[task.task_id].phase}"
            elif why is not None:
                entry.action, entry.reason, entry.waits_for = "wait", why, waiting
            elif active >= max_parallel:
                entry.action, entry.reason = "wait", f"max_parallel ({max_parallel}) tasks are active"
            else:
                active += 1
            entries.append(entry)
    return SpawnPlan(waves=waves, entries=entries)


def sync_ready(
    doc: speckit.TasksDoc, dag_waves: list[list[str]] | None, merged: Set[str], completed: Set[str] = frozenset()
) -> list[str]:
    """The open [SYNC] tasks that wait for nothing once the `merged` agent tasks are in the feature
    branch: an agent task counts as done for them only when it is merged (or `[X]`)."""
    ordering = Ordering.of(doc, dag_waves)
    group = ordering.group_of()
    done = {t.task_id for t in doc.tasks if t.done or (not t.is_async and t.task_id in completed)} | set(merged)
    return [
        t.task_id
        for t in doc.tasks
        if not t.is_async and not t.done and t.task_id not in completed
        and blockers(t, ordering, group[t.task_id], done)[1] is None
    ]
