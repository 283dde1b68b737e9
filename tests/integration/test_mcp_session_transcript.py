"""A whole session over real stdio, recorded as a transcript: spawn three tasks, stream their logs,
list them, cancel one, clean up. The agents' side is played by the test: it writes runner lines into
the pods' logs and finishes the pods with a result (kwok), as the agent image would.

The transcript is printed (see it with `pytest -s`) and written to $AGENTIC_TRANSCRIPT_FILE if set."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.support.mcp_client import McpClient, Progress, ToolResult, connect
from tests.support.runner_env import FEATURE, Cluster, install_chart, make_repo, result_json, server_env
from tests.support.testenv import TestEnv

pytestmark = pytest.mark.integration


def runner_line(phase: str, msg: str) -> str:
    return json.dumps({"ts": "2026-01-01T00:00:00Z", "level": "info", "phase": phase, "msg": msg})


class Transcript:
    def __init__(self, mcp: McpClient) -> None:
        self.mcp = mcp
        self.parts: list[str] = []

    def note(self, text: str) -> None:
        self.parts.append(f"\n## {text}\n")

    async def call(self, tool: str, arguments: dict[str, Any], progress: Progress | None = None) -> ToolResult:
        self.parts.append(f"\n> {tool} {json.dumps(arguments)}\n")
        result = await self.mcp.call(tool, arguments, progress=progress)
        if progress is not None:
            for value, _, message in progress.events:
                self.parts.append(f"  (progress {value:.1f}s) {message}\n")
        self.parts.append("< " + (f"ERROR {result.text}" if result.is_error else self.render(tool, result.ok)) + "\n")
        return result

    @staticmethod
    def render(tool: str, data: dict[str, Any]) -> str:
        if tool != "stream_task_logs":
            return json.dumps(data)
        lines = "".join(f"\n    [{line['task_id']}] {line['text']}" for line in data["lines"])
        tasks = ", ".join(f"{s['task_id']} {s['phase']}{' (finished)' if s['finished'] else ''}" for s in data["tasks"])
        return (
            f"{len(data['lines'])} lines:{lines}\n  tasks: {tasks}; more={data['more']} "
            f"all_finished={data['all_finished']} cursor={data['cursor'][:24]}... ({len(data['cursor'])} chars)"
        )

    def text(self) -> str:
        return "".join(self.parts)


async def test_a_session_spawn_stream_list_cancel_cleanup(testenv: TestEnv, namespace: str, tmp_path: Path) -> None:
    install_chart(testenv, namespace)
    repo = make_repo(tmp_path / "repo")
    cluster = Cluster(testenv, namespace)
    async with connect(server_env(testenv, namespace, repo)) as mcp:
        t = Transcript(mcp)
        t.note("tools")
        t.parts.append("< " + ", ".join(tool["name"] for tool in await mcp.tools()) + "\n")

        t.note("spawn three tasks: the open [ASYNC] tasks of wave 1, then one more by hand")
        spawned = (await t.call("spawn_async_tasks", {"tasks_file": f"specs/{FEATURE}/tasks.md"})).ok
        extra = (
            await t.call(
                "spawn_task_pod",
                {"task_id": "T006", "description": "Write the user guide in docs/guide.md", "timeout_minutes": 30},
            )
        ).ok
        jobs = {h["task_id"]: h["job"] for h in spawned["handles"]} | {extra["task_id"]: extra["job"]}
        assert sorted(jobs) == ["T002", "T003", "T006"]
        pods = {task: cluster.pod_of(job) for task, job in jobs.items()}

        async def agents() -> None:
            for task, pod in pods.items():
                cluster.log(pod, runner_line("clone", f"cloning for {task}"), runner_line("agent", "opencode run"))
            await anyio.sleep(1.5)
            cluster.log(
                pods["T002"],
                runner_line("push", "pushed agentic/001-feature/T002"),
                "AGENTIC_RESULT: " + result_json("T002"),
            )
            cluster.finish(pods["T002"], 0, result_json("T002"))
            cluster.log(
                pods["T003"],
                runner_line("agent", "tests fail: 2 errors"),
                "AGENTIC_RESULT: " + result_json("T003", "failed", error="tests fail"),
            )
            cluster.finish(pods["T003"], 1, result_json("T003", "failed", error="tests fail"))

        t.note("stream their logs (progress notifications carry the latest line)")
        cursor = None
        seen: list[tuple[str, str]] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(agents)
            for _ in range(6):
                chunk = (await t.call("stream_task_logs", {"cursor": cursor, "wait_seconds": 4}, Progress())).ok
                seen += [(line["task_id"], line["text"]) for line in chunk["lines"]]
                cursor = chunk["cursor"]
                phases = {s["task_id"]: s["phase"] for s in chunk["tasks"]}
                if phases.get("T002") == "succeeded" and phases.get("T003") == "failed" and len(seen) >= 10:
                    break
        assert len(seen) == len(set(seen)) == 10
        for task in ("T002", "T003", "T006"):
            assert (task, runner_line("clone", f"cloning for {task}")) in seen

        t.note("list")
        listed = (await t.call("list_agents", {})).ok
        assert {a["task_id"]: a["phase"] for a in listed["agents"]} == {
            "T002": "succeeded",
            "T003": "failed",
            "T006": "running",
        }
        status = (await t.call("get_task_status", {"task_id": "T003"})).ok
        assert status["result"]["error"] == "tests fail"

        t.note("cancel one")
        cancelled = (await t.call("cancel_task", {"task_id": "T006"})).ok
        assert cancelled["deleted_jobs"] == [jobs["T006"]]
        cluster.wait_job_gone(jobs["T006"])

        t.note("clean up")
        dry = (await t.call("cleanup_tasks", {"dry_run": True})).ok
        assert sorted(i["task_id"] for i in dry["deleted"]) == ["T002", "T003"]
        done = (await t.call("cleanup_tasks", {})).ok
        assert sorted(i["task_id"] for i in done["deleted"]) == ["T002", "T003"]
        for task in ("T002", "T003"):
            cluster.wait_job_gone(jobs[task])
        final = (await t.call("list_agents", {})).ok
        assert final["agents"] == []

    transcript = t.text()
    print(transcript)
    if os.environ.get("AGENTIC_TRANSCRIPT_FILE"):
        Path(os.environ["AGENTIC_TRANSCRIPT_FILE"]).write_text(transcript)
