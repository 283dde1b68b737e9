"""The local backend's state directory read back without any process: what a restarted server
makes of tasks that finished, were lost (the supervisor died without an exit record) or are
broken, and the refusals of spawn and status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_server import naming
from mcp_server.backends.local import LocalBackend
from mcp_server.backends.local_state import TaskFiles
from mcp_server.config import load_settings
from mcp_server.errors import ConfigError, Conflict, InvalidInput, TaskNotFound
from mcp_server.models import TaskRef, TaskSpec
from tests.support.git_remotes import git

DEAD_PID = 2**22 + 12345  # above the default pid_max: no such process


def backend(tmp_path: Path) -> LocalBackend:
    settings = load_settings(environ={"AGENTIC_BACKEND": "local", "AGENTIC_REPO_ROOT": str(tmp_path)})
    return LocalBackend(settings.environment(), settings, environ={})


def spec(task_id: str = "T001", base: str = "001-feature", repo: str = "file:///r.git") -> TaskSpec:
    return TaskSpec(
        task_id=task_id,
        description="d",
        repo=repo,
        base_branch=base,
        task_branch=f"agentic/{base}/{task_id}",
        environment="dev",
    )


def put(
    b: LocalBackend,
    job: str,
    s: TaskSpec,
    *,
    exit_code: int | None = None,
    result: dict | None = None,
    log: list[str] = (),
    created: str = "2026-01-01T10:00:00+00:00",
) -> TaskFiles:
    path = b.state / job
    path.mkdir(parents=True)
    (path / "spec.json").write_text(json.dumps({**s.model_dump(mode="json"), "created_at": created, "job": job}))
    (path / "process.json").write_text(json.dumps({"pid": DEAD_PID, "start_time": "1"}))
    (path / "log").write_text("".join(f"2026-01-01T10:00:0{i}.000000000Z {line}\n" for i, line in enumerate(log)))
    if result is not None:
        (path / "result.json").write_text(json.dumps(result))
    if exit_code is not None:
        (path / "exit.json").write_text(
            json.dumps({"exit_code": exit_code, "finished_at": "2026-01-01T10:05:00+00:00"})
        )
    return TaskFiles(path)


RESULT = {
    "task_id": "T001",
    "status": "timed_out",
    "branch": "agentic/001-feature/T001",
    "base": "001-feature",
    "commits": 1,
    "head_sha": "a" * 40,
    "pushed": True,
    "files_changed": ["x"],
    "summary": "",
    "error": "stopped",
}


def test_finished_lost_and_resultless_tasks_after_a_restart(tmp_path: Path) -> None:
    b = backend(tmp_path)
    put(
        b,
        "job-timed-out",
        spec("T001"),
        exit_code=124,
        result=RESULT,
        log=['{"ts": "x", "level": "info", "phase": "push", "msg": "pushed"}', "AGENTIC_RESULT: {}"],
        created="2026-01-01T10:00:03+00:00",
    )
    put(
        b,
        "job-lost",
        spec("T002"),
        log=['{"ts": "x", "level": "info", "phase": "agent", "msg": "m"}'],
        created="2026-01-01T10:00:02+00:00",
    )
    put(b, "job-no-result", spec("T003"), exit_code=1, created="2026-01-01T10:00:01+00:00")
    statuses = b.list_tasks()
    assert [(s.task_id, s.phase, s.reason, s.step, s.exit_code) for s in statuses] == [
        ("T001", "timed_out", "DeadlineExceeded", "push", 124),
        ("T002", "failed", "ProcessLost", "agent", None),
        ("T003", "failed", "NoResult", None, 1),
    ]
    assert statuses[0].result is not None and statuses[0].result.head_sha == "a" * 40
    assert statuses[0].backend == "local" and statuses[0].namespace == "local"


def test_status_refusals(tmp_path: Path) -> None:
    b = backend(tmp_path)
    with pytest.raises(TaskNotFound, match="no task T009 in the local environment 'dev'"):
        b.status(TaskRef(task_id="T009"))
    put(b, "a", spec("T001", "001-feature"), exit_code=0)
    put(b, "b", spec("T001", "002-other"), exit_code=0)
    with pytest.raises(InvalidInput, match="exists on several feature branches"):
        b.status(TaskRef(task_id="T001"))
    assert b.status(TaskRef(task_id="T001", base_branch="002-other")).job == "b"


def test_spawn_of_an_existing_task_returns_it_and_another_repo_is_a_conflict(tmp_path: Path) -> None:
    b = backend(tmp_path)
    job = naming.job_name("T001", "001-feature")
    put(b, job, spec(), exit_code=0)
    handle = b.spawn(spec())
    assert (handle.created, handle.job, handle.backend) == (False, job, "local")
    with pytest.raises(Conflict, match="exists already for another repository"):
        b.spawn(spec(repo="file:///other.git"))
    assert sorted(p.name for p in b.state.iterdir()) == [job]  # nothing new was made


def test_cancel_and_cleanup_of_finished_tasks(tmp_path: Path) -> None:
    b = backend(tmp_path)
    put(b, "done", spec("T001"), exit_code=0, result={**RESULT, "status": "succeeded"})
    put(b, "lost", spec("T002"))
    dry = b.cleanup(None, dry_run=True)
    assert sorted(i.task_id for i in dry.deleted) == ["T001", "T002"] and (b.state / "done").exists()
    cancelled = b.cancel(TaskRef(task_id="T001"))
    assert cancelled.deleted_jobs == ["done"] and cancelled.deleted_pods == []
    assert cancelled.message == "task T001 had finished: deleted the local run done."
    assert not (b.state / "done").exists()
    result = b.cleanup(None, dry_run=False)
    assert [i.task_id for i in result.deleted] == ["T002"] and b.list_tasks() == []


def test_spawn_outside_a_repository_or_on_a_missing_branch_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    b = backend(tmp_path)
    with pytest.raises(
        ConfigError, match=f"the local backend runs tasks in worktrees of a git repository, and {tmp_path}"
    ):
        b.spawn(spec())
    assert not b.state.exists()
    git("init", "-q", "-b", "main", cwd=tmp_path)
    git("commit", "-q", "--allow-empty", "-m", "init", cwd=tmp_path)
    with pytest.raises(InvalidInput) as exc:
        b.spawn(spec(base="002-missing"))
    assert str(exc.value) == (
        f"invalid base_branch: '002-missing' is neither a branch of the repository {tmp_path} nor "
        "origin/002-missing; allowed: an existing branch (git fetch it first)."
    )
    assert not b.state.exists()
