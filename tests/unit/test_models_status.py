"""jobstatus.py + models.py: a task's phase, times and result from Job and pod JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from mcp_server.jobstatus import derive_status
from mcp_server.models import AgentInfo, TaskContext, TaskSpec

NOW = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)


def job(conditions: list[dict[str, Any]] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "agentic-t1-abc",
            "namespace": "ns",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"agentic-sdlc.dev/task-id": "T1", "agentic-sdlc.dev/environment": "dev"},
            "annotations": {
                "agentic-sdlc.dev/base-branch": "001-f",
                "agentic-sdlc.dev/task-branch": "agentic/001-f/T1",
                "agentic-sdlc.dev/repo": "https://h/r.git",
                "agentic-sdlc.dev/description": "do it",
                "agentic-sdlc.dev/feature-dir": "specs/001-f",
            },
            **meta,
        },
        "spec": {},
        "status": {"startTime": "2026-01-01T00:01:00Z", "conditions": conditions or []},
    }


def pod(phase: str, state: dict[str, Any] | None = None, name: str = "agentic-t1-abc-x1") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:01Z"},
        "spec": {"nodeName": "kwok-node-0"},
        "status": {"phase": phase, "containerStatuses": [{"name": "agent", "state": state or {}}]},
    }


def terminated(code: int, message: str = "", reason: str = "Error") -> dict[str, Any]:
    return {
        "terminated": {
            "exitCode": code,
            "message": message,
            "reason": reason,
            "startedAt": "2026-01-01T00:01:00Z",
            "finishedAt": "2026-01-01T00:05:00Z",
        }
    }


def result(status: str, **extra: Any) -> str:
    doc = {"task_id": "T1", "status": status, "branch": "agentic/001-f/T1", "base": "001-f", **extra}
    return json.dumps(doc)


RESULT = json.dumps(
    {
        "task_id": "T1",
        "status": "succeeded",
        "branch": "agentic/001-f/T1",
        "base": "001-f",
        "commits": 2,
        "head_sha": "abc",
        "pushed": True,
        "files_changed": ["a.py"],
        "summary": "did it",
        "error": None,
    }
)


@pytest.mark.parametrize(
    ("the_job", "pods", "phase", "reason"),
    [
        (job(), [], "pending", None),
        (
            job(),
            [pod("Pending", {"waiting": {"reason": "ContainerCreating"}})],
            "pending",
            "ContainerCreating",
        ),
        (job(), [pod("Running", {"running": {}})], "running", None),
        (
            job([{"type": "Complete", "status": "True"}]),
            [pod("Succeeded", terminated(0, RESULT))],
            "succeeded",
            None,
        ),
        (
            job([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]),
            [pod("Failed", terminated(1))],
            "failed",
            "BackoffLimitExceeded",
        ),
        (
            job(
                [
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "DeadlineExceeded",
                        "lastTransitionTime": "2026-01-01T00:06:00Z",
                    }
                ]
            ),
            [],
            "timed_out",
            "DeadlineExceeded",
        ),
        (
            job([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]),
            [pod("Failed", terminated(124, result("timed_out")))],
            "timed_out",
            "BackoffLimitExceeded",
        ),
        (
            job(deletionTimestamp="2026-01-01T00:07:00Z"),
            [pod("Running", {"running": {}})],
            "cancelled",
            "Cancelled",
        ),
        (job(), [pod("Failed", terminated(130, result("cancelled")))], "cancelled", None),
        (job(), [pod("Succeeded", terminated(0, reason="Completed"))], "succeeded", None),
        (job([{"type": "Complete", "status": "False"}]), [pod("Running", {"running": {}})], "running", None),
        # the kubelet's OOMKilled says more than the Job's BackoffLimitExceeded
        (
            job([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]),
            [pod("Failed", terminated(1, result("failed", error="out of memory: ..."), "OOMKilled"))],
            "failed",
            "OOMKilled",
        ),
        (job(), [pod("Failed", terminated(137, reason="OOMKilled"))], "failed", "OOMKilled"),
    ],
)
def test_phases(the_job: dict[str, Any], pods: list[dict[str, Any]], phase: str, reason: str | None) -> None:
    status = derive_status(the_job, pods, "dev", NOW)
    assert (status.phase, status.reason) == (phase, reason)


def test_a_finished_task_in_full() -> None:
    done = job([{"type": "Complete", "status": "True"}])
    done["status"]["completionTime"] = "2026-01-01T00:05:00Z"
    status = derive_status(
        done,
        [pod("Succeeded", terminated(0, RESULT, "Completed"))],
        "dev",
        NOW,
        last_line='{"ts": "t", "level": "info", "phase": "done", "msg": "finished"}',
    )
    assert status.model_dump(mode="json", exclude={"result", "last_log_line"}) == {
        "task_id": "T1",
        "environment": "dev",
        "namespace": "ns",
        "job": "agentic-t1-abc",
        "backend": "kubernetes",
        "base_branch": "001-f",
        "branch": "agentic/001-f/T1",
        "repo": "https://h/r.git",
        "description": "do it",
        "feature_dir": "specs/001-f",
        "phase": "succeeded",
        "step": "done",
        "reason": None,
        "created_at": "2026-01-01T00:00:00Z",
        "started_at": "2026-01-01T00:01:00Z",
        "finished_at": "2026-01-01T00:05:00Z",
        "age_seconds": 600.0,
        "duration_seconds": 240.0,
        "node": "kwok-node-0",
        "pods": ["agentic-t1-abc-x1"],
        "exit_code": 0,
        "attempt": 1,
        "usage": None,
        "previous_usage": None,
    }
    assert status.result is not None and status.result.summary == "did it" and status.result.pushed
    info = AgentInfo.from_status(status)
    assert (info.phase, info.result_summary, info.node, info.reason) == ("succeeded", "did it", "kwok-node-0", None)


def test_an_oom_killed_task_says_so_in_its_row() -> None:
    failed = job([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}])
    error = "out of memory: OpenCode was OOM-killed"
    oom_pod = pod("Failed", terminated(1, result("failed", error=error), "OOMKilled"))
    info = AgentInfo.from_status(derive_status(failed, [oom_pod], "dev", NOW))
    assert (info.phase, info.reason, info.result_summary) == ("failed", "OOMKilled", error)


def test_the_log_marker_is_the_fallback_for_the_result() -> None:
    from mcp_server.logs.results import result_from_lines

    fallback = result_from_lines([f"AGENTIC_RESULT: {RESULT}"])
    status = derive_status(job(), [pod("Succeeded", terminated(0, ""))], "dev", NOW, log_result=fallback)
    assert status.result is not None and status.result.head_sha == "abc"
    status = derive_status(job(), [pod("Succeeded", terminated(0, RESULT))], "dev", NOW, log_result=None)
    assert status.result is not None


def test_a_running_task_has_a_growing_duration() -> None:
    status = derive_status(job(), [pod("Running", {"running": {}})], "dev", NOW)
    assert (status.finished_at, status.duration_seconds, status.age_seconds) == (None, 540.0, 600.0)


def test_spec_context_is_the_contract_document() -> None:
    spec = TaskSpec(
        task_id="T012",
        description="d",
        repo="https://h/r.git",
        base_branch="001-feature",
        task_branch="agentic/001-feature/T012",
        environment="dev",
        timeout_minutes=30,
    )
    assert json.loads(spec.context().model_dump_json()) == {
        "task_id": "T012",
        "description": "d",
        "repo": "https://h/r.git",
        "base_branch": "001-feature",
        "task_branch": "agentic/001-feature/T012",
        "environment": "dev",
        "model": None,
        "agent": None,
        "feature_dir": None,
        "context_files": [],
        "deadline": None,
        "max_cost": None,
        "max_tokens": None,
        "idle_timeout_seconds": None,
    }
    assert isinstance(spec.context(), TaskContext)


def test_a_clone_that_failed_gives_the_task_its_result() -> None:
    """git-clone (the init container) failed: the agent never started; git-clone's termination
    message is the task's result (the error says why), and the task failed."""
    failed = job([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}])
    error = "invalid repo: the host evil.example is not one of the configured repo hosts"
    stuck = pod("Failed", {"waiting": {"reason": "PodInitializing"}})
    stuck["status"]["initContainerStatuses"] = [
        {"name": "git-clone", "state": terminated(1, result("failed", error=error))},
        {"name": "git-push", "state": {"waiting": {"reason": "PodInitializing"}}}]
    status = derive_status(failed, [stuck], "dev", NOW)
    assert (status.phase, status.reason) == ("failed", "BackoffLimitExceeded")
    assert status.result is not None and status.result.error == error
    cloned = pod("Running", {"running": {}})
    cloned["status"]["initContainerStatuses"] = [{"name": "git-clone", "state": terminated(0, "")}]
    assert derive_status(job(), [cloned], "dev", NOW).result is None
