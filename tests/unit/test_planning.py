"""planning.plan_spawns: which [ASYNC] tasks start now, which wait and for what (pure: plain data in)."""

from __future__ import annotations

from mcp_server import speckit
from mcp_server.models import TaskStatus
from mcp_server.planning import plan_spawns
from tests.support.speckit_fork import TASKS_MD as FORK_TASKS_MD

DOC = speckit.parse_tasks("""\
## Phase 1
- [X] T001 Setup
- [ ] T002 [ASYNC] Parser
- [ ] T003 [ASYNC] Printer
- [ ] T004 [SYNC] Review
## Phase 2
- [ ] T005 [ASYNC] Wire
""")
DAG = [["T001", "T002", "T003", "T004"], ["T005"]]


def status(task_id: str, phase: str) -> TaskStatus:
    return TaskStatus(task_id=task_id, environment="dev", namespace="n", job=f"j-{task_id}", phase=phase)


def actions(plan) -> list[tuple[str, int, str, str | None]]:  # noqa: ANN001
    return [(e.task_id, e.wave, e.action, e.reason) for e in plan.entries]


def test_the_first_wave_starts_and_a_later_wave_waits_for_every_earlier_task() -> None:
    plan = plan_spawns(DOC, DAG, {}, max_parallel=5)
    assert plan.waves == [["T002", "T003"], ["T005"]]
    assert actions(plan) == [
        ("T002", 1, "spawn", None),
        ("T003", 1, "spawn", None),
        ("T005", 2, "wait", "wave 1 is not finished (T002, T003, T004)"),
    ]
    assert plan.entries[2].waits_for == ["T002", "T003", "T004"]


def test_without_a_dag_the_phases_are_the_order() -> None:
    """The fork's default (branch mode) has no tasks_dag.json: phase 2 waits for all of phase 1."""
    plan = plan_spawns(DOC, None, {}, max_parallel=5)
    assert plan.waves == [["T002", "T003"], ["T005"]]
    assert actions(plan)[-1] == ("T005", 2, "wait", "Phase 1 is not finished (T002, T003, T004)")
    assert plan.entries[-1].phase == "Phase 2"


def test_existing_tasks_are_kept_and_count_against_max_parallel() -> None:
    plan = plan_spawns(DOC, DAG, {"T002": status("T002", "running")}, max_parallel=1)
    assert actions(plan)[:2] == [
        ("T002", 1, "exists", "phase running"),
        ("T003", 1, "wait", "max_parallel (1) tasks are active"),
    ]


def test_a_succeeded_task_counts_as_done_for_the_next_wave_but_a_sync_task_still_blocks() -> None:
    existing = {"T002": status("T002", "succeeded"), "T003": status("T003", "succeeded")}
    plan = plan_spawns(DOC, DAG, existing, max_parallel=5)
    assert actions(plan)[-1] == ("T005", 2, "wait", "wave 1 is not finished (T004)")
    reviewed = speckit.parse_tasks("- [X] T004 [SYNC] Review\n- [ ] T005 [ASYNC] Wire\n")
    plan = plan_spawns(reviewed, [["T004"], ["T005"]], {}, max_parallel=5)
    assert actions(plan) == [("T005", 2, "spawn", None)]


def test_completed_in_tasks_meta_counts_as_done() -> None:
    existing = {"T002": status("T002", "succeeded"), "T003": status("T003", "succeeded")}
    plan = plan_spawns(DOC, None, existing, max_parallel=5, completed={"T004"})
    assert actions(plan)[-1] == ("T005", 2, "spawn", None)


def test_depends_on_is_waited_for_inside_a_phase_too() -> None:
    doc = speckit.parse_tasks("## Phase 1\n- [ ] T1 [ASYNC] a\n- [ ] T2 [ASYNC] b (depends on T1)\n")
    plan = plan_spawns(doc, None, {}, max_parallel=5)
    assert actions(plan) == [("T1", 1, "spawn", None), ("T2", 1, "wait", "it depends on T1")]
    plan = plan_spawns(doc, None, {"T1": status("T1", "succeeded")}, max_parallel=5)
    assert actions(plan)[-1] == ("T2", 1, "spawn", None)


def test_the_fork_template_feature() -> None:
    doc = speckit.parse_tasks(FORK_TASKS_MD)
    plan = plan_spawns(doc, None, {}, max_parallel=5)
    assert actions(plan) == [
        ("T001", 1, "spawn", None),
        ("T002", 1, "spawn", None),
        ("T004", 2, "wait", "Phase 1 is not finished (T001, T002, T003); it depends on T001"),
    ]


def test_only_the_selected_ids_are_planned() -> None:
    plan = plan_spawns(DOC, None, {}, max_parallel=5, only=["T003"])
    assert plan.waves == [["T003"]] and actions(plan) == [("T003", 1, "spawn", None)]
