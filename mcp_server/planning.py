"""Which [ASYNC] tasks of a tasks.md to spawn now, which wait and why: a pure function of the tasks,
their waves and the tasks that exist already (no I/O, no backend).

A task of a later wave waits until every task of the earlier waves is done (`[X]` in tasks.md, or a
task that succeeded); at most `max_parallel` of the feature's tasks are pending or running at once;
a task that exists already is returned as it is, never started twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mcp_server import speckit
from mcp_server.models import PlannedTask, TaskStatus


@dataclass(frozen=True)
class SpawnPlan:
    waves: list[list[str]]
    """The open [ASYNC] task ids (of the selection), wave by wave."""
    entries: list[PlannedTask]
    """Each selected task with its action: spawn, exists or wait (with the reason)."""

    def ids(self, action: str) -> list[str]:
        return [entry.task_id for entry in self.entries if entry.action == action]


def _done(task: speckit.SpecTask, existing: Mapping[str, TaskStatus]) -> bool:
    status = existing.get(task.task_id)
    return task.done or (status is not None and status.phase == "succeeded")


def plan_spawns(
    tasks: list[speckit.SpecTask],
    dag_waves: list[list[str]] | None,
    existing: Mapping[str, TaskStatus],
    max_parallel: int,
    only: Iterable[str] | None = None,
) -> SpawnPlan:
    """The plan for the open [ASYNC] tasks (`only`: of these ids) given the tasks that exist on the
    feature branch already (`existing`, by task id)."""
    open_waves = speckit.open_async_waves(tasks, dag_waves, only)
    by_wave = speckit.waves_with_all(tasks, dag_waves)
    current = next(
        (k for k, wave in enumerate(by_wave) if any(not _done(t, existing) for t in wave)),
        len(by_wave),
    )
    active = sum(1 for s in existing.values() if s.phase in ("pending", "running"))
    selected = {t.task_id for wave in open_waves for t in wave}

    entries: list[PlannedTask] = []
    for k, wave in enumerate(by_wave):
        for task in wave:
            if task.task_id not in selected:
                continue
            entry = PlannedTask(task_id=task.task_id, wave=k + 1, description=task.description, action="spawn")
            if task.task_id in existing:
                entry.action, entry.reason = "exists", f"phase {existing[task.task_id].phase}"
            elif k > current:
                blockers = [t.task_id for t in by_wave[current] if not _done(t, existing)]
                entry.action = "wait"
                entry.reason = f"wave {current + 1} is not finished ({', '.join(blockers)})"
            elif active >= max_parallel:
                entry.action, entry.reason = "wait", f"max_parallel ({max_parallel}) tasks are active"
            else:
                active += 1
            entries.append(entry)
    return SpawnPlan(waves=[[t.task_id for t in wave] for wave in open_waves], entries=entries)
