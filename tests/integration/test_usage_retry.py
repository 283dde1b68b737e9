"""Usage, budgets, retry and the live view through the real CLI against the real control plane with
the chart installed (kwok runs the pods: the test writes their log lines and termination messages
as the runner would). The spec-kit files are read back as the fork's scripts read them."""

from __future__ import annotations

import json
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_server import naming
from tests.conftest import wait_until
from tests.integration.test_cli import CLI, Cli
from tests.support.runner_env import FEATURE, Cluster, install_chart, make_repo, result_json

pytestmark = pytest.mark.integration

CLOSING = Path("/tmp/usage-closing.txt")
FEATURE_DIR = f"specs/{FEATURE}"
USAGE = {"model": "scripted/scripted-1", "steps": 3, "tool_calls": 2, "input_tokens": 4700, "output_tokens": 260,
         "reasoning_tokens": 50, "cache_read_tokens": 1300, "cache_write_tokens": 0, "cost": 0.01914}


def usage_line(steps: int, cost: float) -> str:
    usage = {**USAGE, "steps": steps, "cost": cost}
    return json.dumps({"ts": "2026-01-01T00:00:00.000Z", "level": "info", "phase": "agent",
                       "msg": f"usage so far: {steps} step(s)", "usage": usage})


@pytest.fixture
def cli(testenv, namespace: str, tmp_path: Path) -> Iterator[Cli]:
    install_chart(testenv, namespace, {"task": {"budget": {"maxCost": 2.5, "maxTokens": 100000},
                                                "idleTimeoutSeconds": 120}})
    yield Cli(testenv, namespace, make_repo(tmp_path / "repo"), Cluster(testenv, namespace))


def spawn(cli: Cli, task_id: str, *extra: str) -> str:
    done = cli.run("spawn", task_id, "--context-dir", FEATURE_DIR, "-o", "json", *extra)
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["job"])


def agents(cli: Cli) -> dict[str, dict]:
    listed = cli.run("list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    return {a["task_id"]: a for a in json.loads(listed.stdout)["agents"]}


def context_of(cli: Cli, job: str) -> dict:
    pod = cli.cluster.get("pod", cli.cluster.pod_of(job, running=False))
    return json.loads(pod["metadata"]["annotations"][naming.ANNOTATION_TASK_CONTEXT])


def test_the_chart_gives_the_runner_its_budget_and_idle_limit(cli: Cli) -> None:
    config = cli.cluster.get("configmap", selector="app.kubernetes.io/component=config")["items"][0]["data"]
    assert json.loads(config["AGENTIC_BUDGET"]) == {"max_cost": 2.5, "max_tokens": 100000}
    assert config["AGENTIC_IDLE_TIMEOUT_SECONDS"] == "120"
    job = spawn(cli, "T002", "--max-cost", "0.5")
    context = context_of(cli, job)
    assert (context["max_cost"], context["max_tokens"]) == (0.5, None)  # None: the chart's default applies


def test_budget_refusals_name_the_field_and_create_nothing(cli: Cli) -> None:
    for args, field in ((["--max-cost", "-1"], "max_cost"), (["--max-tokens", "0"], "max_tokens")):
        refused = cli.run("spawn", "T002", "Implement it", *args)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.startswith(f"agentic-runner: invalid {field}: "), refused.stderr
    assert cli.cluster.jobs() == []


def test_a_one_shot_list_reads_the_tail_of_every_running_task(cli: Cli) -> None:
    """The CLI holds no follow streams: each running task's last lines are read (several at a time)."""
    tasks = {"T002": 1, "T003": 2, "T004": 3}
    for task_id, steps in tasks.items():
        pod = cli.cluster.pod_of(spawn(cli, task_id))
        cli.cluster.log(pod, usage_line(steps, 0.001 * steps), f"{task_id} is working")
    def all_working() -> dict[str, dict] | None:
        listed = agents(cli)
        lines = [a.get("last_log_line") or "" for a in listed.values()]
        return listed if len(listed) == 3 and all(line.endswith("working") for line in lines) else None

    listed = wait_until(all_working, message="every task's last line in list")
    assert {t: a["last_log_line"] for t, a in listed.items()} == {t: f"{t} is working" for t in tasks}
    assert {t: a["usage"]["steps"] for t, a in listed.items()} == tasks


def test_usage_so_far_then_the_final_usage_in_list_status_and_the_speckit_files(cli: Cli) -> None:
    job = spawn(cli, "T002")
    pod = cli.cluster.pod_of(job)
    cli.cluster.log(pod, usage_line(1, 0.005), '{"type":"tool_use","part":{"tool":"read"}}')
    so_far = wait_until(lambda: (agents(cli)["T002"].get("usage") or None), message="usage so far in list")
    assert (so_far["steps"], so_far["cost"]) == (1, 0.005)
    status = cli.run("status", "T002")
    assert ("usage:       so far: 1 step(s), 2 tool call(s), 6,310 tokens, $0.0050, model scripted/scripted-1\n"
            in status.stdout)

    cli.cluster.finish(pod, 0, result_json("T002", usage=USAGE))
    cli.cluster.wait_job_condition(job)
    listed = json.loads(cli.run("list", "-o", "json").stdout)
    assert listed["agents"][0]["usage"] == USAGE
    assert listed["totals"]["by_feature"][FEATURE_DIR]["cost"] == 0.01914
    assert listed["totals"]["by_environment"]["dev"]["input_tokens"] == 4700
    table = cli.run("list").stdout.splitlines()
    assert table[1].split()[7:11] == ["1", "-", "6310", "$0.0191"]
    assert table[2] == "total: 3 steps, 2 tool calls, 6310 tokens, $0.0191"
    completed = (cli.repo / FEATURE_DIR / ".async_state" / "delegation_completed" / "T002.txt").read_text()
    assert "tokens: 6310 (input 4700, output 260, reasoning 50, cache read 1300, cache write 0)\n" in completed
    assert "cost: 0.019140 USD\n" in completed
    meta = json.loads((cli.repo / FEATURE_DIR / "tasks_meta.json").read_text())
    assert meta["tasks"]["T002"]["agentic_runner"]["usage"] == USAGE


def test_budget_stop_then_retry_on_the_branch_with_racing_retries_making_one_job(cli: Cli) -> None:
    job = spawn(cli, "T002", "--max-cost", "0.012")
    running = spawn(cli, "T003")
    pod = cli.cluster.pod_of(job)
    error = "stopped: cost $0.0135 passed the budget max_cost $0.012"
    cli.cluster.log(pod, usage_line(3, 0.0135),
                    json.dumps({"phase": "agent", "msg": f"{error[9:]}: stopping the agent", "level": "warning"}),
                    json.dumps({"phase": "push", "msg": f"pushed agentic/{FEATURE}/T002"}))
    budget = result_json("T002", "budget_exceeded", error=error, usage={**USAGE, "cost": 0.0135})
    cli.cluster.finish(pod, 3, budget)
    cli.cluster.wait_job_condition(job)
    row = agents(cli)["T002"]
    assert (row["phase"], row["attempt"], row["usage"]["cost"]) == ("budget_exceeded", 1, 0.0135)
    errors = cli.repo / FEATURE_DIR / ".async_state" / "delegation_errors" / "T002.txt"
    assert f"reason: budget_exceeded: {error}\n" in errors.read_text()
    meta = json.loads((cli.repo / FEATURE_DIR / "tasks_meta.json").read_text())
    assert meta["tasks"]["T002"]["status"] == "failed"
    before = cli.run("list").stdout

    # a running task is refused, nothing created
    cli.cluster.pod_of(running)
    refused = cli.run("retry", "T003")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == (
        "agentic-runner: invalid task_id: task T003 (attempt 1) cannot be retried: it is still running; allowed: "
        "a task that failed, timed out, passed its budget or stalled (spawn_task_pod starts a new one).\n")
    assert sorted(j["metadata"]["name"] for j in cli.cluster.jobs()) == sorted([job, running])

    # racing retries: one Job
    outcomes: list[subprocess.CompletedProcess[str]] = []
    threads = [threading.Thread(target=lambda: outcomes.append(cli.run("retry", "T002", "-o", "json")))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    second = naming.job_name("T002", FEATURE, 2)
    assert sorted(j["metadata"]["name"] for j in cli.cluster.jobs()) == sorted([job, running, second])
    made = [json.loads(o.stdout) for o in outcomes if o.returncode == 0]
    assert made and all(h["job"] == second and h["attempt"] == 2 for h in made)
    assert sum(h["created"] for h in made) == 1
    for o in outcomes:  # a retry that came after the new attempt existed is refused: it has not finished
        assert o.returncode == 0 or "cannot be retried: it has not finished (pending)" in o.stderr \
            or "cannot be retried: it is still running" in o.stderr, o.stderr
    new_job = cli.cluster.get("job", second)
    assert new_job["metadata"]["labels"]["agentic-sdlc.dev/attempt"] == "2"
    # the previous attempt's time limit (here the chart's default) goes along
    assert new_job["spec"]["activeDeadlineSeconds"] == cli.cluster.get("job", job)["spec"]["activeDeadlineSeconds"]
    context = context_of(cli, second)
    assert context["task_branch"] == f"agentic/{FEATURE}/T002" and context["max_cost"] == 0.012
    assert f"## Previous attempt (1) ended: budget_exceeded\n\nError: {error}\n" in context["description"]
    assert f"[push] pushed agentic/{FEATURE}/T002" in context["description"]
    # the task is its latest attempt; the spec-kit files say in_progress again
    row = agents(cli)["T002"]
    assert (row["attempt"], row["job"]) == (2, second) and row["phase"] in ("pending", "running")
    meta = json.loads((cli.repo / FEATURE_DIR / "tasks_meta.json").read_text())
    assert meta["tasks"]["T002"]["status"] == "in_progress" and not errors.exists()
    assert "attempt:     2\n" in cli.run("status", "T002").stdout

    new_pod = cli.cluster.pod_of(second)
    cli.cluster.finish(new_pod, 0, result_json("T002", usage=USAGE))
    cli.cluster.wait_job_condition(second)
    finished = cli.cluster.pod_of(running)
    cli.cluster.finish(finished, 0, result_json("T003", usage={**USAGE, "cost": 0.002, "steps": 1}))
    cli.cluster.wait_job_condition(running)
    # a succeeded task is refused too
    refused = cli.run("retry", "T002")
    assert refused.returncode == 2 and "cannot be retried: it succeeded" in refused.stderr
    with CLOSING.open("a") as handle:
        handle.write("# agentic-runner list: T002 stopped by its budget (before the retry)\n" + before + "\n")
        handle.write("# agentic-runner list: T002 retried (attempt 2) and finished, T003 finished\n"
                     + cli.run("list").stdout + "\n")


def test_fresh_retry_starts_from_the_base_on_a_branch_of_its_own(cli: Cli) -> None:
    job = spawn(cli, "T002", "--timeout-minutes", "7")
    cli.cluster.finish(cli.cluster.pod_of(job), 1, result_json("T002", "failed", error="OpenCode reported: boom"))
    cli.cluster.wait_job_condition(job)
    refused = cli.run("retry", "T002", "--timeout-minutes", "0")
    assert refused.returncode == 2 and "invalid timeout_minutes" in refused.stderr, refused.stderr
    assert [j["metadata"]["name"] for j in cli.cluster.jobs()] == [job]
    retried = cli.run("retry", "T002", "--fresh", "--max-cost", "3")
    second = naming.job_name("T002", FEATURE, 2)
    assert cli.cluster.get("job", second)["spec"]["activeDeadlineSeconds"] == 7 * 60  # the first attempt's limit
    assert (retried.returncode, retried.stderr) == (0, "")
    assert retried.stdout == (f"T002: attempt 2, job {second} in {cli.namespace} (dev), branch "
                              f"agentic/{FEATURE}/T002-attempt-2 — created\n")
    context = context_of(cli, second)
    assert context["max_cost"] == 3.0
    assert "Error: OpenCode reported: boom" in context["description"]
    assert "starts again from the base branch (fresh)" in context["description"]
    # a cancel takes the earlier attempt along: the task does not come back as its first attempt
    cancelled = cli.run("cancel", "T002", "-o", "json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["deleted_jobs"] == [second, job]
    cli.cluster.wait_job_gone(second)
    cli.cluster.wait_job_gone(job)
    assert cli.run("status", "T002").returncode == 1


class Tmux:
    """A tmux server of the test's own (socket under the test's directory) running one command."""

    def __init__(self, root: Path, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.socket = str(root / "tmux.sock")
        script = root / "watch.sh"
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
        # The script keeps the command's exit status: tmux 3.3 at times marks the pane dead with no
        # #{pane_dead_status}.
        self.status_file = root / "watch.status"
        script.write_text(f"#!/bin/sh\n{exports}cd {shlex.quote(str(cwd))}\n{shlex.join(command)}\n"
                          f"echo $? > {shlex.quote(str(self.status_file))}\n")
        script.chmod(0o755)
        self.tmux("-f", "/dev/null", "new-session", "-d", "-x", "180", "-y", "40", "-s", "watch", str(script))
        self.tmux("set-option", "-t", "watch", "remain-on-exit", "on")

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", self.socket, *args], check=True, capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-e", "-t", "watch")

    def plain(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "watch")

    def wait_exit(self, timeout: float, what: str) -> str:
        """The command's exit status once it has ended; fails with the screen and the pane's state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status_file.exists() and (status := self.status_file.read_text().strip()):
                return status
            time.sleep(0.2)
        pane = self.tmux("display-message", "-p", "-t", "watch",
                         "dead=#{pane_dead} status=#{pane_dead_status} signal=#{pane_dead_signal} pid=#{pane_pid}")
        pytest.fail(f"timed out after {timeout}s waiting for {what}; pane: {pane.strip()}; screen:\n{self.plain()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True)


def test_list_watch_redraws_one_table_until_every_task_has_ended(cli: Cli, tmp_path: Path) -> None:
    jobs = {task: spawn(cli, task) for task in ("T002", "T003")}
    pods = {task: cli.cluster.pod_of(job) for task, job in jobs.items()}
    cli.cluster.log(pods["T002"], usage_line(1, 0.005))
    tmux = Tmux(tmp_path, [CLI, "list", "--watch", "--interval", "0.5"], cli.env(), cli.repo)
    try:
        def shows(*texts: str) -> str | None:
            screen = tmux.plain()
            return screen if all(t in screen for t in texts) else None

        screen = wait_until(lambda: shows("T002", "T003", "$0.0050", "total: 1 steps"), timeout=60,
                            message="both tasks and T002's usage so far on the screen")
        assert screen.count("TASK") == 1  # one table, redrawn in place
        assert "\x1b[36mrunning\x1b[39m" in tmux.screen()  # coloured on a terminal (as tmux re-encodes it)
        cli.cluster.finish(pods["T002"], 0, result_json("T002", usage=USAGE))
        wait_until(lambda: shows("succeeded", "$0.0191"), timeout=60, message="T002's final usage")
        cli.cluster.finish(pods["T003"], 0, result_json("T003", usage={**USAGE, "cost": 0.001}))
        status = tmux.wait_exit(60, "watch to end by itself")
        assert status == "0"
        final = tmux.plain()
        # one table and both rows' PHASE column (the header line may have scrolled away under tmux's
        # "Pane is dead" line, and a row's last-line column may quote the result line)
        assert final.count("TASK ") == 1
        rows = {line.split()[0]: line.split()[2] for line in final.splitlines() if line.startswith(("T002", "T003"))}
        assert rows == {"T002": "succeeded", "T003": "succeeded"}
        assert "total: 6 steps, 4 tool calls, 12.6k tokens, $0.0201" in final
    finally:
        tmux.close()


def test_list_watch_quits_on_q(cli: Cli, tmp_path: Path) -> None:
    spawn(cli, "T002")
    tmux = Tmux(tmp_path, [CLI, "list", "--watch", "--interval", "0.5"], cli.env(), cli.repo)
    try:
        wait_until(lambda: "T002" in tmux.plain() or None, timeout=60, message="the table")
        time.sleep(0.5)
        tmux.tmux("send-keys", "-t", "watch", "q")
        status = tmux.wait_exit(30, "watch to quit on q")
        assert status == "0"
    finally:
        tmux.close()
