"""The projector (handoff.py) writes the spec-kit files the fork's own scripts read: their
`check-status` and `summary` are the oracle (tests/fixtures/speckit-agentic)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mcp_server.async_state import AsyncState
from mcp_server.handoff import Projector, register_doc_tasks
from mcp_server.models import TaskResult, TaskStatus
from mcp_server.speckit import parse_tasks
from mcp_server.tasks_meta import TasksMeta
from tests.support.speckit_fork import TASKS_MD, Fork, make_feature

ORIGIN = "https://git.example.com/org/repo.git"
CREATED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ENDED = datetime(2026, 1, 1, 12, 5, tzinfo=UTC)


def status(task_id: str, phase: str, **extra: object) -> TaskStatus:
    fields: dict[str, object] = {
        "task_id": task_id,
        "environment": "dev",
        "namespace": "ns",
        "job": f"agentic-{task_id.lower()}-x",
        "base_branch": "001-greeter",
        "branch": f"agentic/001-greeter/{task_id}",
        "repo": ORIGIN,
        "description": f"the task {task_id}",
        "feature_dir": "specs/001-greeter",
        "phase": phase,
        "created_at": CREATED,
    }
    if phase in ("succeeded", "failed", "timed_out", "cancelled"):
        fields["finished_at"] = ENDED
    if phase in ("succeeded", "failed"):
        fields["result"] = TaskResult(
            task_id=task_id,
            status=phase,
            branch=f"agentic/001-greeter/{task_id}",
            base="001-greeter",
            commits=1 if phase == "succeeded" else 0,
            head_sha="0123456789abcdef0123456789abcdef01234567",
            pushed=phase == "succeeded",
            summary=f"{task_id} done" if phase == "succeeded" else "",
            error="tests fail" if phase == "failed" else None,
        )
    fields.update(extra)
    return TaskStatus.model_validate(fields)


@pytest.fixture
def fork(tmp_path: Path) -> Fork:
    repo = tmp_path / "repo"
    fork = Fork.install(repo, make_feature(repo))
    fork.init()
    return fork


def projector(fork: Fork, origin: str | None = ORIGIN) -> Projector:
    return Projector(fork.repo, lambda: origin)


def test_check_status_and_summary_follow_the_cluster_after_one_observation(fork: Fork) -> None:
    fork.add_task("T001", "Create the greeting module in src/greet.py", "ASYNC")
    fork.add_task("T002", "Create the farewell module in src/farewell.py", "ASYNC")
    fork.dispatch_async("T001", "Create the greeting module in src/greet.py")
    p = projector(fork)
    assert fork.check_status("T001") == "running"  # dispatched, nothing seen yet

    assert p.observe([status("T001", "running"), status("T002", "running")]) == ["T001", "T002"]
    assert fork.statuses("T001", "T002") == {"T001": "running", "T002": "running"}
    assert fork.summary() == {
        "total_tasks": 2, "pending": 0, "in_progress": 2, "completed": 0, "failed": 0,
        "sync_tasks": 0, "async_tasks": 2, "all_done": False,
    }

    p.observe([status("T001", "succeeded"), status("T002", "failed")])
    assert fork.statuses("T001", "T002") == {"T001": "completed", "T002": "failed"}
    summary = fork.summary()
    assert (summary["completed"], summary["failed"], summary["all_done"]) == (1, 1, False)
    meta = json.loads(fork.meta.read_text())["tasks"]
    assert meta["T001"]["status"] == "completed"
    assert meta["T001"]["completed_at"] == "2026-01-01T12:05:00+00:00"
    assert meta["T001"]["result_summary"] == "T001 done"
    assert meta["T001"]["agent_type"] == "general"  # the fork's own fields stay
    assert meta["T002"]["failure_reason"] == "tests fail"
    assert meta["T002"]["agentic_runner"]["job"] == "agentic-t002-x"
    completed = (fork.feature / ".async_state" / "delegation_completed" / "T001.txt").read_text()
    assert "branch: agentic/001-greeter/T001" in completed
    assert "head_sha: 0123456789abcdef0123456789abcdef01234567" in completed
    assert "commits: 1" in completed and "summary: T001 done" in completed
    assert "reason: tests fail" in (fork.feature / ".async_state" / "delegation_errors" / "T002.txt").read_text()

    p.observe([status("T002", "succeeded", created_at=ENDED)])  # a rerun of T002 succeeded
    assert fork.statuses("T001", "T002") == {"T001": "completed", "T002": "completed"}
    assert fork.summary()["all_done"] is True


def test_the_dispatch_async_prompt_is_kept_and_a_missing_one_is_written(fork: Fork) -> None:
    fork.dispatch_async("T001", "Create the greeting module in src/greet.py")
    prompt = (fork.feature / ".async_state" / "delegation_prompts" / "T001.md").read_text()
    projector(fork).observe([status("T001", "running"), status("T002", "running")])
    assert (fork.feature / ".async_state" / "delegation_prompts" / "T001.md").read_text() == prompt
    assert AsyncState(fork.feature).prompt("T001") == prompt.strip()
    written = (fork.feature / ".async_state" / "delegation_prompts" / "T002.md").read_text()
    assert written.startswith("# Delegation Request") and "the task T002" in written
    assert fork.check_status("T002") == "running"


def test_projection_is_idempotent_and_an_older_observation_never_wins(fork: Fork) -> None:
    p = projector(fork)
    assert p.observe([status("T001", "succeeded")]) == ["T001"]
    files = {path: path.read_bytes() for path in fork.feature.rglob("*") if path.is_file()}
    assert p.observe([status("T001", "succeeded")]) == []
    # Another server that saw the same run a moment earlier (still running) writes nothing.
    assert Projector(fork.repo, lambda: ORIGIN).observe([status("T001", "running")]) == []
    assert {path: path.read_bytes() for path in fork.feature.rglob("*") if path.is_file()} == files
    assert fork.check_status("T001") == "completed"


def test_edits_by_the_forks_scripts_and_unknown_fields_are_kept(fork: Fork) -> None:
    fork.add_task("T003", "Review the module layout", "SYNC")
    data = json.loads(fork.meta.read_text())
    data["reviewer"] = "me"
    data["tasks"]["T003"]["note"] = "by hand"
    fork.meta.write_text(json.dumps(data))
    projector(fork).observe([status("T001", "running")])
    fork.run("complete-task", str(fork.meta), "T003", "looks good")  # the main session, meanwhile
    projector(fork).observe([status("T001", "succeeded")])
    after = json.loads(fork.meta.read_text())
    assert after["reviewer"] == "me" and after["feature"] == "001-greeter"
    assert after["tasks"]["T003"]["note"] == "by hand"
    assert after["tasks"]["T003"]["status"] == "completed"
    assert after["tasks"]["T003"]["result_summary"] == "looks good"
    assert after["tasks"]["T001"]["status"] == "completed"


def test_a_failed_task_done_by_hand_stays_done(fork: Fork) -> None:
    """The follow command offers to do a failed agent task by hand: the fork's `complete-task` then
    holds, every later observation of the same failed run leaves it (a new run is projected again)."""
    fork.add_task("T002", "Create the farewell module in src/farewell.py", "ASYNC")
    p = projector(fork)
    assert p.observe([status("T002", "failed", result=None)]) == ["T002"]
    assert p.observe([status("T002", "failed")]) == ["T002"]  # its result, read a moment later, still counts
    assert json.loads(fork.meta.read_text())["tasks"]["T002"]["failure_reason"] == "tests fail"
    fork.run("complete-task", str(fork.meta), "T002", "done by hand")
    before = fork.meta.read_text()
    assert p.observe([status("T002", "failed")]) == []
    assert Projector(fork.repo, lambda: ORIGIN).observe([status("T002", "failed")]) == []  # a second server too
    assert fork.meta.read_text() == before
    assert fork.summary()["all_done"] is True
    assert fork.check_status("T002") == "failed"  # what the agent's run did stays on record

    p.observe([status("T002", "running", created_at=ENDED)])  # a retry: the cluster speaks again
    assert json.loads(fork.meta.read_text())["tasks"]["T002"]["status"] == "in_progress"


def test_concurrent_writers_lose_nothing(fork: Fork) -> None:
    p = projector(fork)
    ids = [f"T{n:03d}" for n in range(100, 140)]

    def write(chunk: list[str]) -> None:
        for task_id in chunk:
            p.observe([status(task_id, "running")])
            p.observe([status(task_id, "succeeded")])

    threads = [threading.Thread(target=write, args=(ids[k::4],)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(TasksMeta(fork.feature).completed()) == set(ids)
    assert fork.summary()["completed"] == len(ids)


@pytest.mark.parametrize(
    ("why", "change"),
    [
        ("another repository's Job", {"repo": "https://git.example.com/other/repo.git"}),
        ("a feature dir leaving the repository", {"feature_dir": "../outside"}),
        ("an absolute feature dir elsewhere", {"feature_dir": "/etc"}),
        ("a feature dir that does not exist", {"feature_dir": "specs/002-other"}),
        ("no feature dir", {"feature_dir": None}),
    ],
)
def test_tasks_that_are_not_ours_are_not_projected(fork: Fork, tmp_path: Path, why: str, change: dict) -> None:
    """Attack: a Job in the namespace whose annotations point the server at files it must not write."""
    (tmp_path / "outside").mkdir()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert projector(fork).observe([status("T001", "succeeded", **change)]) == [], why
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_without_an_origin_only_local_tasks_are_projected(fork: Fork) -> None:
    p = projector(fork, origin=None)
    assert p.observe([status("T001", "succeeded")]) == []
    assert p.observe([status("T001", "succeeded", backend="local")]) == ["T001"]


def test_the_whole_feature_is_registered_so_summary_is_honest(fork: Fork) -> None:
    doc = parse_tasks(TASKS_MD)
    register_doc_tasks(TasksMeta(fork.feature), doc.tasks, CREATED)
    summary = fork.summary()
    assert (summary["total_tasks"], summary["pending"], summary["sync_tasks"], summary["async_tasks"]) == (5, 5, 2, 3)
    assert summary["all_done"] is False
