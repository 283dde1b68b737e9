"""The result JSON: exactly the contract's fields, the marker line, the exit codes, the 4096-byte
termination-message limit."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from mcp_server.logs.results import result_from_lines
from mcp_server.models import TaskResult as ServerTaskResult
from mcp_server.runner.result import TERMINATION_MESSAGE_LIMIT, TaskResult

CONTRACT_FIELDS = [
    "task_id",
    "status",
    "branch",
    "base",
    "commits",
    "head_sha",
    "pushed",
    "files_changed",
    "summary",
    "error",
    "usage",
]


def make(**kw) -> TaskResult:
    base = {
        "task_id": "T012",
        "status": "succeeded",
        "branch": "agentic/001-feature/T012",
        "base": "001-feature",
    }
    return TaskResult(**{**base, **kw})


def test_fields_are_exactly_the_contract() -> None:
    assert list(TaskResult.model_fields) == CONTRACT_FIELDS
    assert list(json.loads(make().to_json())) == CONTRACT_FIELDS


def test_unknown_status_and_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="status"):
        make(status="done")
    with pytest.raises(ValidationError, match="extra"):
        make(exit=3)


@pytest.mark.parametrize(
    ("status", "code"),
    [("succeeded", 0), ("no_changes", 0), ("failed", 1), ("timed_out", 124), ("cancelled", 130)],
)
def test_exit_code_is_zero_only_for_succeeded_and_no_changes(status: str, code: int) -> None:
    assert make(status=status).exit_code == code


def test_marker_line_round_trips_and_the_server_model_reads_it() -> None:
    result = make(commits=2, head_sha="a" * 40, pushed=True, files_changed=["src/parser.py"], summary="done")
    line = result.marker_line()
    assert line.startswith("AGENTIC_RESULT: {")
    assert result_from_lines([line]) == result
    assert ServerTaskResult.model_validate_json(line.removeprefix("AGENTIC_RESULT: ")).status == "succeeded"
    assert result_from_lines(["AGENTIC_RESULT: {not json"]) is None
    assert result_from_lines(['{"task_id": "T012"}']) is None


def test_a_big_result_is_cut_to_the_termination_message_limit() -> None:
    files = [f"src/module_{i:04d}/some/long/path/file_{i}.py" for i in range(400)]
    result = make(summary="é" * 5000, files_changed=files, error="x" * 5000)
    text = result.to_json()
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    data = json.loads(text)
    assert data["files_changed"][-1].startswith("... ") and data["files_changed"][-1].endswith(" more")
    shown = len(data["files_changed"]) - 1
    assert data["files_changed"][:shown] == files[:shown]
    assert int(data["files_changed"][-1].split()[1]) == len(files) - shown
    assert data["error"] and data["task_id"] == "T012"


def test_a_small_result_is_not_touched() -> None:
    result = make(summary="short", files_changed=["a.py", "b.py"])
    assert json.loads(result.to_json()) == result.model_dump(mode="json")
