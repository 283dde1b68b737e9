"""Which tasks a cleanup takes, the same for both backends (`backends.base.cleanup_choice`): every
finished one old enough, cancelled ones included, except a task whose cancel is under way (a Job
being deleted; a local run whose cancel has not finished)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from mcp_server.backends.base import cleanup_choice
from mcp_server.backends.local_state import this_process
from mcp_server.jobstatus import derive_status
from mcp_server.models import TaskRef
from tests.unit.test_models_status import job, pod, result, terminated
from tests.unit.test_runner_local_backend import DEAD_PID, RESULT, backend, put, spec

NOW = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)


def test_kubernetes_statuses_a_job_being_deleted_is_kept_a_runner_cancelled_one_taken() -> None:
    failed = [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]
    statuses = [
        derive_status(job(name="ok"), [pod("Succeeded", terminated(0, reason="Completed"))], "dev", NOW),
        derive_status(job(failed, name="stopped"), [pod("Failed", terminated(130, result("cancelled")))], "dev", NOW),
        derive_status(job(name="deleting", deletionTimestamp="2026-01-01T00:07:00Z"), [], "dev", NOW),
        derive_status(job(name="running"), [pod("Running", {"running": {}})], "dev", NOW),
    ]
    assert [(s.job, s.phase, s.reason, s.cancelling) for s in statuses] == [
        ("ok", "succeeded", None, False),
        ("stopped", "cancelled", "BackoffLimitExceeded", False),
        ("deleting", "cancelled", "Cancelled", True),
        ("running", "running", None, False),
    ]
    taken, kept = cleanup_choice(statuses, None, NOW)
    assert ([s.job for s in taken], kept) == (["ok", "stopped"], 2)
    # finished at 00:05 (the pod's finishedAt): 5 minutes before NOW
    taken, kept = cleanup_choice(statuses, 300, NOW)
    assert ([s.job for s in taken], kept) == (["ok", "stopped"], 2)
    taken, kept = cleanup_choice(statuses, 301, NOW)
    assert ([s.job for s in taken], kept) == ([], 4)


def test_local_cleanup_takes_runner_cancelled_tasks_and_keeps_one_being_cancelled(tmp_path: Path) -> None:
    b = backend(tmp_path)
    cancelled = {**RESULT, "status": "cancelled", "error": "stopped: SIGTERM received"}
    put(b, "done", spec("T001"), exit_code=0, result={**RESULT, "status": "succeeded"})
    put(b, "stopped", spec("T002"), exit_code=130, result=cancelled)
    being = put(b, "being-cancelled", spec("T003"), exit_code=130, result=cancelled)
    (being.path / "cancel.json").write_text(json.dumps(this_process()))
    # a cancel whose process died midway: the task is simply finished
    stale = put(b, "stale-cancel", spec("T004"), exit_code=0, result={**RESULT, "status": "succeeded"})
    (stale.path / "cancel.json").write_text(json.dumps({"pid": DEAD_PID, "start_time": "1"}))

    statuses = {s.task_id: (s.phase, s.reason, s.cancelling) for s in b.list_tasks()}
    assert statuses == {
        "T001": ("succeeded", None, False),
        "T002": ("cancelled", None, False),  # the runner was stopped, but not by a cancel
        "T003": ("cancelled", "Cancelled", True),  # as a Job being deleted
        "T004": ("succeeded", None, False),
    }

    dry = b.cleanup(None, dry_run=True)
    assert sorted(i.task_id for i in dry.deleted) == ["T001", "T002", "T004"] and dry.kept == 1
    assert sorted(p.name for p in b.state.iterdir()) == ["being-cancelled", "done", "stale-cancel", "stopped"]
    done = b.cleanup(None, dry_run=False)
    assert sorted(i.task_id for i in done.deleted) == ["T001", "T002", "T004"] and done.kept == 1
    assert done.message.startswith("deleted 3 finished task(s) in the local environment 'dev': ")
    assert done.message.endswith("; kept 1.")
    assert [p.name for p in b.state.iterdir()] == ["being-cancelled"]

    # the cancel's own end: it deletes the task, and the marker goes with it
    cancel = b.cancel(TaskRef(task_id="T003"))
    assert cancel.deleted_jobs == ["being-cancelled"] and b.list_tasks() == []
