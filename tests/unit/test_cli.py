"""cli.py without a cluster: argument parsing, usage errors (exit 2), refused input, table output."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mcp_server import cli
from mcp_server.config import load_settings
from mcp_server.models import AgentInfo, AgentList, TaskResult, TaskStatus, TaskUsage, UsageTotals
from mcp_server.service import RunnerService


def run(argv: list[str], tmp_path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()

    def factory(env: str | None) -> RunnerService:
        return RunnerService(
            load_settings({"AGENTIC_REPO_ROOT": str(tmp_path), "HOME": str(tmp_path)}, environment=env)
        )

    code = cli.run(argv, service_factory=factory, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["bogus"], ["spawn"], ["list", "--output", "yaml"], ["cleanup", "--older-than", "x"]):
        with pytest.raises(SystemExit) as stop:
            cli.build_parser().parse_args(argv)
        assert stop.value.code == 2
    assert "usage: agentic-runner" in capsys.readouterr().err


def test_options_work_before_and_after_the_command() -> None:
    parser = cli.build_parser()
    a = parser.parse_args(["--env", "stg", "-o", "json", "list"])
    b = parser.parse_args(["list", "--env", "stg", "-o", "json"])
    c = parser.parse_args(["list"])
    assert (a.env, a.output) == (b.env, b.output) == ("stg", "json")
    assert (c.env, c.output) == (None, "table")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["spawn", "T1;rm", "text"], "invalid task_id: it contains characters that are not allowed"),
        (
            ["spawn", "T1", "text", "--base-branch", "a..b"],
            "invalid base_branch: it is not a valid git branch name",
        ),
        (
            ["spawn", "T1", "text", "--repo", "https://u:p@h/r.git"],
            "invalid repo: it contains embedded credentials",
        ),
        (["spawn", "T1"], "invalid description: it was not given and no tasks.md line of the task was found"),
        (
            ["--env", "qa", "list"],
            "invalid --env: unknown environment 'qa'; allowed: one of the configured environments: dev, prod, stg.",
        ),
        (["logs", "--cursor", "nope"], "invalid cursor: it is not a cursor returned by stream_task_logs"),
        (["list", "--limit", "0"], "invalid limit: input should be greater than or equal to 1"),
        (["list", "--limit", "1001"], "invalid limit: input should be less than or equal to 1000"),
        (
            ["list", "--continue", "not a token!"],
            "invalid continue_token: it is not a continue token of list_agents; allowed: the `continue_token` "
            "of the previous list_agents result of the same environment, or empty.",
        ),
        (
            ["list", "-A", "--limit", "10"],
            "invalid limit: pages are per environment; allowed: empty with all_environments.",
        ),
    ],
)
def test_refused_input_exits_2_with_the_message(argv: list[str], message: str, tmp_path: Path) -> None:
    code, out, err = run(argv, tmp_path)
    assert code == 2 and out == ""
    assert err.startswith(f"agentic-runner: {message}")
    assert ":p@" not in err


def test_list_table_and_status_output() -> None:
    usage = TaskUsage(model="p/m", steps=3, tool_calls=2, input_tokens=12000, output_tokens=500, cost=0.0125)
    agents = [
        AgentInfo(
            task_id="T1",
            environment="dev",
            branch="agentic/f/T1",
            job="j1",
            phase="running",
            step="agent",
            age_seconds=3723,
            duration_seconds=65,
            node="kwok-node-0",
            last_log_line="cloning\nrepo",
            usage=usage,
            feature_dir="specs/001-f",
        ),
        AgentInfo(task_id="T22", environment="dev", job="j2", phase="succeeded", result_summary="did it",
                  attempt=2, usage=usage, feature_dir="specs/001-f"),
    ]
    result = AgentList(environments=["dev"], counts={}, agents=agents, totals=UsageTotals.of(agents))
    out = io.StringIO()
    cli.print_agents(result, out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == [
        "TASK", "ENV", "PHASE", "BRANCH", "AGE", "DURATION", "NODE", "TRY", "STEP", "TOKENS", "COST",
        "LAST", "LINE", "/", "RESULT",
    ]
    assert lines[1].split() == [
        "T1", "dev", "running", "agentic/f/T1", "1h2m", "1m5s", "kwok-node-0", "1", "agent", "12.5k", "$0.0125",
        "cloning", "repo",
    ]
    assert lines[2].split() == [
        "T22", "dev", "succeeded", "-", "-", "-", "-", "2", "-", "12.5k", "$0.0125", "did", "it"]
    assert lines[3:] == [
        "total: 6 steps, 4 tool calls, 25.0k tokens, $0.0250",
        "  environment dev: 6 steps, 4 tool calls, 25.0k tokens, $0.0250",
        "  feature specs/001-f: 6 steps, 4 tool calls, 25.0k tokens, $0.0250",
    ]
    no_usage = io.StringIO()
    cli.print_agents(AgentList(environments=["dev"], counts={}, agents=[agents[0].model_copy(update={"usage": None})]),
                     no_usage)
    assert len(no_usage.getvalue().splitlines()) == 2 and "total" not in no_usage.getvalue()
    empty = io.StringIO()
    cli.print_agents(AgentList(environments=["dev", "stg"], agents=[], counts={}), empty)
    assert empty.getvalue() == "no tasks in dev, stg\n"

    status = TaskStatus(
        task_id="T1",
        environment="dev",
        namespace="ns",
        job="j1",
        phase="failed",
        reason="BackoffLimitExceeded",
        result=TaskResult(task_id="T1", branch="agentic/f/T1", base="f", status="failed", error="boom"),
    )
    out = io.StringIO()
    cli.print_status(status, out)
    text = out.getvalue()
    assert "phase:       failed (BackoffLimitExceeded)\n" in text and "error:       boom\n" in text


def test_run_task_hands_its_arguments_to_the_runner(tmp_path: Path) -> None:
    """`agentic-runner run-task` is the runner (mcp_server.runner.main): a missing task context is a
    failed result, written to the result file and behind the marker, exit 1."""
    import json
    import subprocess
    import sys

    result_file = tmp_path / "result.json"
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "agentic-runner"),
            "run-task",
            "--context",
            str(tmp_path / "none.json"),
            "--result-file",
            str(result_file),
            "--workspace",
            str(tmp_path / "ws"),
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    result = json.loads(result_file.read_text())
    assert result["status"] == "failed" and "none.json" in result["error"]
    assert proc.stdout.splitlines()[-1] == "AGENTIC_RESULT: " + result_file.read_text().strip()
