"""The real OpenCode as the MCP client, configured by this repository's own opencode.json (and its
.opencode/ agent), with a scripted model on 127.0.0.1: OpenCode starts `agentic-runner-mcp`, passes
the environment through, names the tools `agentic-runner_<tool>` and gets their results."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from mcp_server import naming
from tests.support.runner_env import FEATURE, Cluster, install_chart, make_repo, server_env
from tests.support.runner_harness import offline_env
from tests.support.scripted_model import ScriptedModel, ToolCall, Turn
from tests.support.testenv import REPO_ROOT, TestEnv

pytestmark = pytest.mark.integration


def events(stdout: str) -> list[dict[str, Any]]:
    out = []
    for line in stdout.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def tool_uses(stdout: str) -> list[dict[str, Any]]:
    return [e["part"] for e in events(stdout) if e.get("type") == "tool_use"]


def test_opencode_calls_the_tools_through_the_repositorys_opencode_json(
    testenv: TestEnv, namespace: str, tmp_path: Path, opencode_bin: str
) -> None:
    install_chart(testenv, namespace)
    repo = make_repo(tmp_path / "repo")
    shutil.copy(REPO_ROOT / "opencode.json", repo / "opencode.json")
    shutil.copytree(REPO_ROOT / ".opencode", repo / ".opencode")
    cluster = Cluster(testenv, namespace)

    logged = threading.Event()
    script = [
        Turn(
            text="Spawning T002.",
            tool_calls=(
                ToolCall(
                    "agentic-runner_spawn_task_pod",
                    {"task_id": "T002", "description": "Implement the parser in src/parser.py"},
                ),
            ),
        ),
        # The model asks for the logs once the agent has written a line (the test plays the agent).
        Turn(
            tool_calls=(ToolCall("agentic-runner_stream_task_logs", {"task_ids": ["T002"], "wait_seconds": 3}),),
            gate=logged,
        ),
        Turn(tool_calls=(ToolCall("agentic-runner_spawn_task_pod", {"task_id": "T2;reboot", "description": "x"}),)),
        Turn(text="T002 is running."),
    ]
    with ScriptedModel(script) as model:
        env = {**offline_env(tmp_path / "home"), **server_env(testenv, namespace, repo)}
        env.update(
            {
                "HOME": str(tmp_path / "home"),
                "SCRIPTED_API_KEY": "test-key",
                "OPENCODE_CONFIG_CONTENT": json.dumps(
                    {
                        **model.opencode_config(),
                        "autoupdate": False,
                        "share": "disabled",
                        "agent": {"title": {"disable": True}},
                    }
                ),
                "OPENCODE_DISABLE_MODELS_FETCH": "1",
                "OPENCODE_DISABLE_AUTOUPDATE": "1",
                "OPENCODE_DISABLE_SHARE": "1",
                "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
                "PWD": str(repo),
            }
        )
        (tmp_path / "home" / "tmp").mkdir(parents=True, exist_ok=True)
        job = naming.job_name("T002", FEATURE)

        def write_logs() -> None:
            pod = cluster.pod_of(job)
            cluster.log(pod, "agent says hi")

        proc = subprocess.Popen(
            [opencode_bin, "run", "--format", "json", "--dir", str(repo), "--model", model.model],
            cwd=repo,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None
        proc.stdin.write("Hand task T002 of specs/001-feature/tasks.md to an agent pod and watch it.")
        proc.stdin.close()
        proc.stdin = None  # communicate() below must not touch it again
        model.recorded.wait_for(2, timeout=180)  # the spawn's result is back with the model
        write_logs()
        logged.set()
        stdout, stderr = proc.communicate(timeout=300)

    uses = tool_uses(stdout)
    by_tool = {u["tool"]: u for u in uses}
    assert [u["tool"] for u in uses] == [
        "agentic-runner_spawn_task_pod",
        "agentic-runner_stream_task_logs",
        "agentic-runner_spawn_task_pod",
    ], stderr[-3000:]
    spawned = uses[0]["state"]
    assert spawned["status"] == "completed", spawned
    assert json.loads(spawned["output"])["job"] == job
    streamed = by_tool["agentic-runner_stream_task_logs"]["state"]
    assert streamed["status"] == "completed", streamed
    assert [(line["task_id"], line["text"]) for line in json.loads(streamed["output"])["lines"]] == [
        ("T002", "agent says hi")
    ]
    refused = uses[2]["state"]
    assert refused["status"] == "error"
    assert "invalid task_id: it contains characters that are not allowed" in refused["error"]
    assert [j["metadata"]["name"] for j in cluster.jobs()] == [job]

    # The repository's subagent for [ASYNC] work loads, without write/edit/bash.
    agents = subprocess.run(
        [opencode_bin, "agent", "list"], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert "async-delegate (subagent)" in agents.stdout.splitlines(), agents.stderr[-2000:]
