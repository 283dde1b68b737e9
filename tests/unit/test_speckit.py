"""speckit.py: tasks.md, tasks_dag.json waves, .async_state files and tasks_meta.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_server import speckit
from mcp_server.errors import InvalidInput
from mcp_server.models import TaskHandle, TaskResult, TaskStatus

TASKS_MD = """\
# Tasks: 001 feature

## Phase 1: Setup
- [X] T001 Create project structure
- [ ] T002 [P] [ASYNC] [US1] Implement the parser in src/parser.py
- [ ] T003 [SYNC] Review the schema in docs/schema.md
- [ ] T004 [P] [ASYNC] Write tests in tests/test_parser.py

## Phase 2: Polish
- [x] T005 [ASYNC] Done already
- [ ] T006 [ASYNC] [SYNC] Contradictory: treated as sync
* [ ] T007 [async] Lowercase tags count too
- [ ] Review the README (a checklist item, not a task)
"""


def test_parse_tasks() -> None:
    tasks = speckit.parse_tasks(TASKS_MD)
    assert [t.task_id for t in tasks] == ["T001", "T002", "T003", "T004", "T005", "T006", "T007"]
    t2 = tasks[1]
    assert (t2.done, t2.tags, t2.description, t2.line, t2.section) == (
        False,
        ("P", "ASYNC", "US1"),
        "Implement the parser in src/parser.py",
        5,
        "Phase 1: Setup",
    )
    assert [t.task_id for t in tasks if t.is_open_async] == ["T002", "T004", "T007"]
    assert tasks[0].done and tasks[4].done and not tasks[4].is_open_async


@pytest.mark.parametrize("bad", ["T1;rm", "T1$(id)", "T" + "1" * 300, "T1..x"])
def test_task_lines_with_bad_ids_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        speckit.parse_tasks(f"- [ ] T001 ok\n- [ ] {bad} [ASYNC] evil\n")
    assert str(refused.value).startswith("invalid tasks_file: line 2: the task id ")


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(InvalidInput, match="line 2: task id T1 is used again"):
        speckit.parse_tasks("- [ ] T1 a\n- [ ] T1 b\n")


def test_waves_from_the_dag() -> None:
    tasks = speckit.parse_tasks(TASKS_MD)
    dag = speckit.parse_waves({"execution_waves": [["T001", "T002"], {"tasks": ["T003", {"id": "T004"}]}]})
    assert dag == [["T001", "T002"], ["T003", "T004"]]
    waves = speckit.open_async_waves(tasks, dag)
    assert [[t.task_id for t in w] for w in waves] == [["T002"], ["T004"], ["T007"]]
    assert [[t.task_id for t in w] for w in speckit.open_async_waves(tasks, None)] == [["T002", "T004", "T007"]]
    assert [[t.task_id for t in w] for w in speckit.open_async_waves(tasks, dag, ["T004"])] == [["T004"]]
    with pytest.raises(InvalidInput, match="invalid task_ids: no task T999 in the tasks file"):
        speckit.open_async_waves(tasks, dag, ["T999"])
    assert speckit.parse_waves({"nodes": []}) is None
    with pytest.raises(InvalidInput, match="invalid tasks_dag.json"):
        speckit.parse_waves({"execution_waves": "T1"})


def test_async_state_files(tmp_path: Path) -> None:
    task = speckit.parse_tasks(TASKS_MD)[1]
    state = speckit.AsyncState(tmp_path)
    handle = TaskHandle(
        task_id="T002",
        job="agentic-t002-x",
        namespace="ns",
        environment="dev",
        branch="agentic/001/T002",
        base_branch="001",
        created=True,
    )
    state.write_prompt(task, handle)
    prompt = (tmp_path / ".async_state" / "delegation_prompts" / "T002.md").read_text()
    assert "Implement the parser in src/parser.py" in prompt and "agentic/001/T002" in prompt

    running = TaskStatus(task_id="T002", environment="dev", namespace="ns", job="j", phase="running")
    assert not state.record(running)
    failed = running.model_copy(
        update={
            "phase": "failed",
            "result": TaskResult(task_id="T1", branch="agentic/f/T1", base="f", status="failed", error="boom"),
        }
    )
    assert state.record(failed)
    assert "error: boom" in (tmp_path / ".async_state" / "delegation_errors" / "T002.txt").read_text()
    done = running.model_copy(
        update={
            "phase": "succeeded",
            "result": TaskResult(task_id="T1", branch="agentic/f/T1", base="f", status="succeeded", commits=2),
        }
    )
    assert state.record(done)
    assert "commits: 2" in (tmp_path / ".async_state" / "delegation_completed" / "T002.txt").read_text()
    assert not (tmp_path / ".async_state" / "delegation_errors" / "T002.txt").exists()
    meta = json.loads((tmp_path / "tasks_meta.json").read_text())
    assert meta["tasks"]["T002"] == {"execution": "async", "phase": "succeeded", "status": "completed"}


def test_tasks_meta_keeps_other_keys(tmp_path: Path) -> None:
    (tmp_path / "tasks_meta.json").write_text(json.dumps({"feature": "001", "tasks": {"T1": {"owner": "me"}}}))
    speckit.AsyncState(tmp_path).update_meta("T1", {"status": "delegated"})
    meta = json.loads((tmp_path / "tasks_meta.json").read_text())
    assert meta == {
        "feature": "001",
        "tasks": {"T1": {"owner": "me", "status": "delegated", "execution": "async"}},
    }
