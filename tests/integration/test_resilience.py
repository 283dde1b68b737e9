"""Resilience of the MCP server (real stdio, the SDK's client) against the real control plane when
its parts fail: etcd stopped under the API server, the API server restarted under five followed log
streams, the MCP server itself killed in the middle of a stream_task_logs call, and fifty spawns of
ten tasks racing each other. (The single-stream API server restart and a clean server restart are in
test_mcp_server.py.)"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_server import naming
from tests.conftest import wait_until
from tests.support.mcp_client import McpClient, connect
from tests.support.processes import newest_server_pid
from tests.support.runner_env import FEATURE, Cluster, install_chart, make_repo, server_env
from tests.support.testenv import TestEnv

pytestmark = pytest.mark.integration

# What OpenCode allows a tool call by default before it gives up on it (DESIGN.md): every tool must
# answer inside it, also when the cluster cannot.
CLIENT_TIMEOUT = 60.0


@dataclass(frozen=True)
class World:
    testenv: TestEnv
    namespace: str
    repo: Path
    cluster: Cluster

    def env(self) -> dict[str, str]:
        return server_env(self.testenv, self.namespace, self.repo)


@pytest.fixture
def world(testenv: TestEnv, namespace: str, tmp_path: Path) -> Iterator[World]:
    install_chart(testenv, namespace)
    yield World(testenv, namespace, make_repo(tmp_path / "repo"), Cluster(testenv, namespace))


def spawn_args(task_id: str) -> dict[str, object]:
    return {"task_id": task_id, "description": f"Do {task_id} in src/{task_id.lower()}.py"}


def api_server(testenv: TestEnv) -> str:
    port = next(line.split("=", 1)[1] for line in (testenv.state_dir / "ports.env").read_text().splitlines()
                if line.startswith("APISERVER_PORT="))
    return f"https://127.0.0.1:{port}"


# Every tool with arguments that reach the cluster, and (after etcd is back) what its answer shows.
def every_tool() -> dict[str, dict[str, Any]]:
    return {
        "spawn_task_pod": spawn_args("T003"),
        "spawn_async_tasks": {"tasks_file": f"specs/{FEATURE}/tasks.md", "dry_run": True},
        "stream_task_logs": {"wait_seconds": 5},
        "list_agents": {},
        "get_task_status": {"task_id": "T002"},
        "cancel_task": {"task_id": "T009"},
        "merge_task_branches": {"feature": f"specs/{FEATURE}", "dry_run": True},
        "cleanup_tasks": {"dry_run": True},
    }


async def test_with_etcd_stopped_every_tool_says_the_cluster_is_unavailable_and_recovers(world: World) -> None:
    """etcd stopped: the API server still accepts connections but cannot answer. Every tool answers
    inside the client's timeout with an error naming the API server (and nothing else is said as if
    it were true); once etcd is back, every tool works again on the same server process."""
    server = api_server(world.testenv)
    async with connect(world.env()) as mcp:
        handle = (await mcp.call("spawn_task_pod", spawn_args("T002"))).ok
        world.cluster.pod_of(handle["job"])
        world.testenv.stop("etcd")
        try:
            tools = every_tool()
            results = await asyncio.gather(
                *(mcp.call(tool, args, timeout=CLIENT_TIMEOUT) for tool, args in tools.items())
            )
        finally:
            world.testenv.start("etcd")
        for tool, result in zip(tools, results, strict=True):
            assert result.is_error, f"{tool} answered as if the cluster were there: {result.text}"
            assert result.text.startswith(f"Error executing tool {tool}: cluster unavailable: "), result.text
            assert f"the Kubernetes API server at {server}" in result.text, result.text
            assert "Traceback" not in result.text

        # etcd back, the API server and kwok (the node's status, which pods/log needs) catch up: each
        # tool is tried until it works, as a user would retry after "cluster unavailable".
        after: dict[str, Any] = {}
        for tool, args in every_tool().items():
            for _ in range(60):
                result = await mcp.call(tool, args, timeout=CLIENT_TIMEOUT)
                if not result.is_error:
                    break
                assert result.text.startswith(f"Error executing tool {tool}: cluster unavailable: "), result.text
                await anyio.sleep(1)
            after[tool] = result
    for tool, result in after.items():
        assert not result.is_error, f"{tool} still fails after etcd came back: {result.text}"
    assert sorted(a["task_id"] for a in after["list_agents"].ok["agents"]) == ["T002", "T003"]
    assert after["get_task_status"].ok["phase"] == "running"
    assert after["cancel_task"].ok["deleted_jobs"] == []
    assert sorted(j["metadata"]["labels"][naming.LABEL_TASK_ID] for j in world.cluster.jobs()) == ["T002", "T003"]


TRANSIENT = ("cluster unavailable",)


async def follow(mcp: McpClient, task_id: str, cursor: str | None, expected: int, rounds: int = 12,
                 wait: float = 3) -> tuple[list[str], str | None]:
    """stream_task_logs for one task from `cursor` until `expected` lines came (at most `rounds` calls);
    a call that fails while the API server comes back delivers nothing and keeps the cursor."""
    seen: list[str] = []
    for _ in range(rounds):
        if len(seen) >= expected:
            break
        result = await mcp.call("stream_task_logs", {"task_ids": [task_id], "cursor": cursor, "wait_seconds": wait})
        if result.is_error:
            assert any(s in result.text for s in TRANSIENT), result.text
            continue
        seen += [line["text"] for line in result.ok["lines"]]
        cursor = result.ok["cursor"]
    return seen, cursor


async def test_an_api_server_restart_under_five_followed_streams_loses_and_repeats_nothing(world: World) -> None:
    tasks = [f"T{i:03d}" for i in range(11, 16)]
    async with connect(world.env()) as mcp:
        jobs = {t: (await mcp.call("spawn_task_pod", spawn_args(t))).ok["job"] for t in tasks}
        pods = {t: world.cluster.pod_of(job) for t, job in jobs.items()}
        cursors: dict[str, str | None] = {}
        for t in tasks:
            world.cluster.log(pods[t], f"{t} before")
            seen, cursors[t] = await follow(mcp, t, None, 1)
            assert seen == [f"{t} before"]

        got: dict[str, list[str]] = {t: [] for t in tasks}

        async def follower(t: str) -> None:
            seen, cursors[t] = await follow(mcp, t, cursors[t], 4, rounds=20)
            got[t] += seen

        async def disturb() -> None:
            await anyio.sleep(1)
            for t in tasks:
                world.cluster.log(pods[t], f"{t} during 0", f"{t} during 1")
            await anyio.to_thread.run_sync(world.testenv.restart, "kube-apiserver")
            for t in tasks:
                world.cluster.log(pods[t], f"{t} after 0", f"{t} after 1")

        async with anyio.create_task_group() as tg:
            tg.start_soon(disturb)
            for t in tasks:
                tg.start_soon(follower, t)
        for t in tasks:  # and nothing more comes afterwards
            tail, _ = await follow(mcp, t, cursors[t], 1, rounds=1, wait=1)
            got[t] += tail
    for t in tasks:
        assert got[t] == [f"{t} during 0", f"{t} during 1", f"{t} after 0", f"{t} after 1"], t


async def test_the_mcp_server_killed_mid_stream_loses_nothing(world: World) -> None:
    """SIGKILL of the server while a stream_task_logs call waits: whatever the client got before is
    kept, a call cut off delivered nothing, and a new server from the last cursor the client holds
    delivers the rest (the lines of the cut call and the ones written since) exactly once, and
    list_agents shows every task. (A call returns ~0.2 s after its first line, so the lines written
    during the wait usually reach the client before the kill; the call pending then is cut.)"""
    async with connect(world.env()) as mcp:
        handles = [(await mcp.call("spawn_task_pod", spawn_args(t))).ok for t in ("T002", "T003", "T005")]
        pods = [world.cluster.pod_of(h["job"]) for h in handles]
        world.cluster.log(pods[0], "old line")
        seen: list[str] = []
        cursor = None
        while not seen:
            chunk = (await mcp.call("stream_task_logs", {"cursor": cursor, "wait_seconds": 2})).ok
            seen, cursor = [line["text"] for line in chunk["lines"]], chunk["cursor"]
        assert seen == ["old line"]
        pid = newest_server_pid()
        assert pid is not None
        got: list[str] = []
        outcome: dict[str, Any] = {}

        async def doomed() -> None:
            nonlocal cursor
            while True:
                try:
                    result = await mcp.call("stream_task_logs", {"cursor": cursor, "wait_seconds": 20}, timeout=30)
                except Exception as exc:  # the connection is gone: the SDK says so
                    outcome["error"] = exc
                    return
                if result.is_error:
                    outcome["result"] = result
                    return
                got.extend(line["text"] for line in result.ok["lines"])
                cursor = result.ok["cursor"]

        async with anyio.create_task_group() as tg:
            tg.start_soon(doomed)
            await anyio.sleep(1)
            world.cluster.log(pods[0], "during 0")
            world.cluster.log(pods[1], "during 1")
            await anyio.sleep(2)  # the pending call has read them
            os.kill(pid, signal.SIGKILL)
        assert outcome, "the call pending at the kill ended without a result"
        wait_until(lambda: newest_server_pid() != pid, message="the killed server to be gone")
    world.cluster.log(pods[2], "after")
    async with connect(world.env()) as mcp:
        listed = (await mcp.call("list_agents", {})).ok
        logs = (await mcp.call("stream_task_logs", {"cursor": cursor, "wait_seconds": 2})).ok
        rest = (await mcp.call("stream_task_logs", {"cursor": logs["cursor"], "wait_seconds": 1})).ok
    assert sorted(a["task_id"] for a in listed["agents"]) == ["T002", "T003", "T005"]
    assert {a["job"] for a in listed["agents"]} == {h["job"] for h in handles}
    assert sorted(got + [line["text"] for line in logs["lines"]]) == ["after", "during 0", "during 1"]
    assert rest["lines"] == []


async def test_fifty_concurrent_spawns_of_ten_tasks_make_exactly_ten_jobs(world: World) -> None:
    tasks = [f"T{i:03d}" for i in range(100, 110)]
    async with connect(world.env()) as a, connect(world.env()) as b, connect(world.env()) as c, \
            connect(world.env()) as d, connect(world.env()) as e:
        clients = [a, b, c, d, e]
        calls = [clients[n % 5].call("spawn_task_pod", spawn_args(tasks[n % 10])) for n in range(50)]
        results = await asyncio.gather(*calls)
    handles = [r.ok for r in results]
    by_task: dict[str, set[str]] = {}
    for h in handles:
        by_task.setdefault(h["task_id"], set()).add(h["job"])
    assert by_task == {t: {naming.job_name(t, FEATURE)} for t in tasks}
    assert sorted(h["task_id"] for h in handles if h["created"]) == tasks
    assert sorted(j["metadata"]["name"] for j in world.cluster.jobs()) == sorted(
        naming.job_name(t, FEATURE) for t in tasks
    )
