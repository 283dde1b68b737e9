"""The next attempt's spec carries what the previous attempt was given: its time limit and git
Secret (unless the retry names a new limit), its context; the prompt gets the previous error."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from mcp_server import retry
from mcp_server.logs.relay import StreamRead, TaskStreams
from mcp_server.models import RetryRequest, StreamPosition, TaskRef, TaskSpec, TaskStatus

GIVEN = TaskSpec(task_id="T002", description="Write the parser", repo="https://git.example.com/p.git",
                 base_branch="001-feature", task_branch="agentic/001-feature/T002", environment="dev",
                 max_cost=2.0, timeout_minutes=7, ssh_secret="deploy-key-p")
FAILED = TaskStatus(task_id="T002", environment="dev", namespace="ns", job="agentic-t002", phase="failed",
                    base_branch="001-feature", branch="agentic/001-feature/T002", reason="OpenCode reported: boom")


class Given:
    """What next_spec reads of a backend: the latest attempt's spec and (no) log."""

    def task_spec(self, ref: TaskRef) -> TaskSpec:
        assert (ref.task_id, ref.base_branch) == ("T002", "001-feature")
        return GIVEN

    def log_streams(self, refs: Sequence[TaskRef] | None) -> list[TaskStreams]:
        return []

    def read_stream(self, stream: str, position: StreamPosition, **_: object) -> StreamRead:
        raise AssertionError("no stream to read")


def test_the_next_attempt_keeps_the_time_limit_and_the_git_secret() -> None:
    spec = retry.next_spec(Given(), RetryRequest(task_id="T002"), FAILED)  # type: ignore[arg-type]
    assert (spec.attempt, spec.timeout_minutes, spec.ssh_secret, spec.max_cost) == (2, 7, "deploy-key-p", 2.0)
    assert spec.task_branch == GIVEN.task_branch and spec.deadline is None
    assert spec.description.startswith("Write the parser\n\n## Previous attempt (1) ended: failed")
    assert "Error: OpenCode reported: boom" in spec.description
    assert "timeout_minutes" not in spec.context().model_dump()


def test_a_retry_may_give_a_new_time_limit_and_budget() -> None:
    req = RetryRequest(task_id="T002", timeout_minutes=30, max_cost=5, fresh=True)
    spec = retry.next_spec(Given(), req, FAILED)  # type: ignore[arg-type]
    assert (spec.timeout_minutes, spec.max_cost, spec.ssh_secret) == (30, 5.0, "deploy-key-p")
    assert spec.task_branch == "agentic/001-feature/T002-attempt-2"


@pytest.mark.parametrize("minutes", [0, 1441])
def test_a_retry_time_limit_out_of_range_is_refused(minutes: int) -> None:
    with pytest.raises(ValidationError) as info:
        RetryRequest(task_id="T002", timeout_minutes=minutes)
    assert info.value.errors()[0]["loc"] == ("timeout_minutes",)
