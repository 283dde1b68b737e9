"""The `agentic-runner` CLI as a real process against the real control plane with the chart installed:
output, exit codes, and `logs -f` as one stern-like stream that new tasks join."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mcp_server import naming
from tests.support.runner_env import BIN, FEATURE, Cluster, install_chart, make_repo, result_json, server_env
from tests.support.testenv import TestEnv

pytestmark = pytest.mark.integration

CLI = str(BIN / "agentic-runner")


@dataclass(frozen=True)
class Cli:
    testenv: TestEnv
    namespace: str
    repo: Path
    cluster: Cluster

    def env(self, who: str = "developer") -> dict[str, str]:
        return server_env(self.testenv, self.namespace, self.repo, who)

    def run(self, *args: str, who: str = "developer", timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, *args], env=self.env(who), cwd=self.repo, capture_output=True, text=True, timeout=timeout
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [CLI, *args],
            env=self.env(),
            cwd=self.repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture
def cli(testenv: TestEnv, namespace: str, tmp_path: Path) -> Iterator[Cli]:
    install_chart(testenv, namespace)
    yield Cli(testenv, namespace, make_repo(tmp_path / "repo"), Cluster(testenv, namespace))


def test_spawn_list_status_cancel_cleanup(cli: Cli) -> None:
    job = naming.job_name("T002", FEATURE)
    spawned = cli.run("spawn", "T002", "Implement the parser in src/parser.py")
    assert (spawned.returncode, spawned.stderr) == (0, "")
    assert spawned.stdout == (f"T002: job {job} in {cli.namespace} (dev), branch agentic/{FEATURE}/T002 — created\n")
    again = cli.run("spawn", "T002", "Implement the parser in src/parser.py", "-o", "json")
    assert json.loads(again.stdout)["created"] is False

    # The description can come from the feature's tasks.md (the original spawn-pod.sh interface).
    from_tasks = cli.run("spawn", "T003", "--context-dir", f"specs/{FEATURE}", "-o", "json")
    assert from_tasks.returncode == 0, from_tasks.stderr
    job3 = json.loads(from_tasks.stdout)["job"]
    annotations = cli.cluster.get("job", job3)["metadata"]["annotations"]
    assert annotations["agentic-sdlc.dev/description"] == "Implement the printer in src/printer.py"

    pod = cli.cluster.pod_of(job)
    cli.cluster.finish(pod, 0, result_json("T002"))
    cli.cluster.wait_job_condition(job)

    listed = cli.run("list")
    assert listed.returncode == 0
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert rows[0][:7] == ["TASK", "ENV", "PHASE", "BRANCH", "AGE", "DURATION", "NODE"]
    assert sorted((r[0], r[2]) for r in rows[1:]) == [("T002", "succeeded"), ("T003", "running")]
    as_json = json.loads(cli.run("list", "-o", "json").stdout)
    assert as_json["counts"]["running"] == 1 and as_json["environments"] == ["dev"]

    status = cli.run("status", "T002")
    assert status.returncode == 0
    assert "phase:       succeeded\n" in status.stdout and "summary:     T002 done\n" in status.stdout
    missing = cli.run("status", "T404")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == (
        f"agentic-runner: no task T404 in environment 'dev' (namespace '{cli.namespace}'). "
        "list_agents shows the tasks that exist.\n"
    )

    dry = cli.run("cleanup", "--dry-run")
    assert dry.stdout == "would delete 1 finished task(s) in environment 'dev': T002 (succeeded); kept 1.\n"
    cancelled = cli.run("cancel", "T003")
    assert cancelled.returncode == 0 and cancelled.stdout.startswith(f"cancelled task T003: deleted Job {job3}")
    cli.cluster.wait_job_gone(job3)
    cleaned = cli.run("cleanup")
    assert cleaned.stdout == "deleted 1 finished task(s) in environment 'dev': T002 (succeeded); kept 0.\n"


def test_a_failed_task_makes_status_exit_1(cli: Cli) -> None:
    job = json.loads(cli.run("spawn", "T002", "x", "-o", "json").stdout)["job"]
    cli.cluster.finish(cli.cluster.pod_of(job), 1, result_json("T002", "failed", error="tests fail"))
    cli.cluster.wait_job_condition(job)
    status = cli.run("status", "T002")
    assert status.returncode == 1
    assert (
        "phase:       failed (BackoffLimitExceeded)\n" in status.stdout and "error:       tests fail\n" in status.stdout
    )


def test_usage_and_input_errors_exit_2_and_create_nothing(cli: Cli) -> None:
    usage = cli.run("spawn")
    assert usage.returncode == 2 and "usage: agentic-runner spawn" in usage.stderr
    bad = cli.run("spawn", "T1|id", "x")
    assert bad.returncode == 2 and bad.stderr.startswith("agentic-runner: invalid task_id:")
    env = cli.run("--env", "qa", "list")
    assert env.returncode == 2 and "unknown environment 'qa'" in env.stderr
    assert cli.cluster.jobs() == []


def test_the_stranger_is_told_what_permission_is_missing(cli: Cli) -> None:
    result = cli.run("list", who="stranger")
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"agentic-runner: forbidden: user 'stranger' may not list jobs.batch in namespace '{cli.namespace}'"
    )


def test_spawn_async_dry_run_and_spawn(cli: Cli) -> None:
    dry = cli.run("spawn-async", f"specs/{FEATURE}/tasks.md", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert [line.split()[:3] for line in dry.stdout.splitlines()[:4]] == [
        ["TASK", "WAVE", "ACTION"],
        ["T002", "1", "spawn"],
        ["T003", "1", "spawn"],
        ["T005", "2", "wait"],
    ]
    assert cli.cluster.jobs() == []
    real = cli.run("spawn-async", f"specs/{FEATURE}/tasks.md", "--max-parallel", "1", "-o", "json")
    plan = json.loads(real.stdout)["plan"]
    assert [(p["task_id"], p["action"]) for p in plan] == [
        ("T002", "spawn"),
        ("T003", "wait"),
        ("T005", "wait"),
    ]
    assert len(cli.cluster.jobs()) == 1


def test_logs_follow_is_one_stream_with_a_prefix_per_task_and_new_tasks_join(cli: Cli) -> None:
    job2 = json.loads(cli.run("spawn", "T002", "x", "-o", "json").stdout)["job"]
    pod2 = cli.cluster.pod_of(job2)
    cli.cluster.log(pod2, "T002 says hello")
    follower = cli.popen("logs", "-f")
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "[T002] T002 says hello\n"
        job3 = json.loads(cli.run("spawn", "T003", "y", "-o", "json").stdout)["job"]
        pod3 = cli.cluster.pod_of(job3)
        cli.cluster.log(pod3, "T003 joined")
        cli.cluster.log(pod2, "T002 again")
        lines = {follower.stdout.readline(), follower.stdout.readline()}
        assert lines == {"[T003] T003 joined\n", "[T002] T002 again\n"}
    finally:
        follower.terminate()
        follower.wait(timeout=10)

    # Without -f: what is there, then exit. With task ids and -f: until those tasks finish.
    once = cli.run("logs", "T003")
    assert (once.returncode, once.stdout) == (0, "[T003] T003 joined\n")
    coloured = cli.run("logs", "--color", "always")
    assert coloured.stdout.splitlines() == [
        "\x1b[36m[T002]\x1b[0m T002 says hello",
        "\x1b[33m[T003]\x1b[0m T003 joined",
        "\x1b[36m[T002]\x1b[0m T002 again",
    ]
    until_done = cli.popen("logs", "-f", "T003")
    try:
        assert until_done.stdout is not None
        assert until_done.stdout.readline() == "[T003] T003 joined\n"
        cli.cluster.log(pod3, "T003 finishing")
        cli.cluster.finish(pod3, 1, result_json("T003", "failed"))
        assert until_done.stdout.readline() == "[T003] T003 finishing\n"
        assert until_done.wait(timeout=60) == 1
    finally:
        if until_done.poll() is None:
            until_done.kill()


def test_logs_json_output_gives_a_cursor_to_continue(cli: Cli) -> None:
    job = json.loads(cli.run("spawn", "T002", "x", "-o", "json").stdout)["job"]
    pod = cli.cluster.pod_of(job)
    cli.cluster.log(pod, "one", "two")
    first = [json.loads(line) for line in cli.run("logs", "-o", "json").stdout.splitlines()]
    assert [d["text"] for d in first[:-1]] == ["one", "two"] and first[-1]["tasks"][0]["task_id"] == "T002"
    cli.cluster.log(pod, "three")
    later = cli.run("logs", "--cursor", first[-1]["cursor"], "-o", "json").stdout.splitlines()
    assert [json.loads(line).get("text") for line in later[:-1]] == ["three"]
