"""The whole path on the test control plane's real node: the chart installed with the agent image
(imported into the node's containerd), the node's selector and toleration; a git daemon and the
scripted model on the host, bound to the node's gateway address (the one host address pods reach);
a developer's clone whose `origin` is that daemon; the MCP server's environment. And a recorder of
what `stream_task_logs` delivers, with the time each line arrived."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp_server.logs.positions import ts_nanos
from tests.support.git_remotes import BASE_BRANCH, BareRemote, git, git_daemon, make_bare_remote
from tests.support.mcp_client import McpClient
from tests.support.runner_env import Cluster, install_chart, server_env
from tests.support.runner_harness import SCRIPTED_API_KEY
from tests.support.scripted_model import Script, ScriptedModel
from tests.support.testenv import REAL_NODE_SELECTOR, REAL_NODE_TOLERATIONS, TestEnv

RUNTIME_CLASS = "runc"  # made by scripts/testenv.sh: containerd's runc handler
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


@dataclass
class RealNodeWorld:
    testenv: TestEnv
    namespace: str
    remote: BareRemote
    url: str
    model: ScriptedModel
    repo: Path
    cluster: Cluster

    def env(self, **extra: str) -> dict[str, str]:
        return server_env(self.testenv, self.namespace, self.repo, "developer", **extra)


def deploy(
    stack: ExitStack,
    testenv: TestEnv,
    namespace: str,
    image: tuple[str, str],
    workdir: Path,
    select: Callable[[dict[str, Any]], Script] | Script,
    values: Mapping[str, Any] | None = None,
) -> RealNodeWorld:
    """Everything for tasks on the real node in `namespace` (labelled Pod Security `restricted`)."""
    gateway = testenv.node.gateway
    testenv.kubectl("label", "namespace", namespace, *[f"{k}={v}" for k, v in RESTRICTED.items()])
    remote = make_bare_remote(workdir / "remotes")
    prefix = stack.enter_context(git_daemon(remote.path.parent, host=gateway))
    url = f"{prefix}/{remote.path.name}"
    model = stack.enter_context(ScriptedModel(select, host=gateway))
    repo = workdir / "dev" / "project"
    git("clone", "-q", "--branch", BASE_BRANCH, url, str(repo))
    testenv.kubectl("create", "secret", "generic", "llm", "-n", namespace,
                    f"--from-literal=SCRIPTED_API_KEY={SCRIPTED_API_KEY}")
    repository, tag = image
    chart_values: dict[str, Any] = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "externalSecrets": {"enabled": False},
        "existingSecret": {"llm": "llm"},
        "opencode": {"model": model.model},
        # the git daemon on the gateway (plain git://: a test host marked insecure)
        "git": {"hosts": [{"host": gateway, "insecure": True}]},
        # OpenCode reaches the scripted model only through the pod's LLM proxy, which adds the key
        "llmProxy": {"port": 8787, "providers": [
            {"name": "scripted", "upstream": model.base_url, "header": "Authorization", "valuePrefix": "Bearer ",
             "secretKey": "SCRIPTED_API_KEY", "insecure": True}]},
        "nodeSelector": REAL_NODE_SELECTOR,
        "tolerations": REAL_NODE_TOLERATIONS,
        "runtimeClassName": RUNTIME_CLASS,
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}},
        "extraEnv": [
            {"name": "AGENTIC_OPENCODE_CONFIG", "value": json.dumps(model.opencode_config())},
            {"name": "npm_config_registry", "value": "http://127.0.0.1:9/"},
        ],
        **(values or {}),
    }
    install_chart(testenv, namespace, chart_values)
    return RealNodeWorld(testenv, namespace, remote, url, model, repo, Cluster(testenv, namespace))


@dataclass(frozen=True)
class Received:
    """One line as the client got it: the line and when it arrived (UTC)."""

    line: dict[str, Any]
    at: datetime

    @property
    def latency_seconds(self) -> float:
        """From the time the kubelet stamped on the line to its arrival at the MCP client."""
        stamp = self.line["time"]
        return (self.at.timestamp() * 1e9 - ts_nanos(stamp)) / 1e9


@dataclass
class LogRecorder:
    """Calls stream_task_logs again and again with its cursor, keeping every line with its arrival
    time, until the tasks are finished and delivered or `done()` says so."""

    mcp: McpClient
    task_ids: list[str]
    received: list[Received] = field(default_factory=list)
    cursor: str | None = None
    phases: dict[str, str] = field(default_factory=dict)
    calls: int = 0

    async def step(self, wait_seconds: float = 2) -> dict[str, Any]:
        args = {"task_ids": self.task_ids, "cursor": self.cursor, "wait_seconds": wait_seconds, "max_lines": 5000}
        chunk = (await self.mcp.call("stream_task_logs", args)).ok
        now = datetime.now(UTC)
        self.calls += 1
        self.cursor = chunk["cursor"]
        self.received += [Received(line, now) for line in chunk["lines"]]
        self.phases = {t["task_id"]: t["phase"] for t in chunk["tasks"]}
        return chunk

    async def run(self, until: Callable[[LogRecorder], bool] | None = None, timeout: float = 300,
                  each: Callable[[LogRecorder], Awaitable[None]] | None = None) -> None:
        """Until every task is finished and delivered (or `until(self)`), calling `each` after every call."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = await self.step()
            if each is not None:
                await each(self)
            if until is not None and until(self):
                return
            if until is None and chunk["all_finished"]:
                return
        raise AssertionError(f"the log stream did not end in {timeout}s; phases {self.phases}, "
                             f"{len(self.received)} lines, last: {[r.line['text'][:200] for r in self.received[-5:]]}")

    def texts(self, task_id: str | None = None) -> list[str]:
        return [r.line["text"] for r in self.received if task_id is None or r.line["task_id"] == task_id]

    def runner_phases(self, task_id: str) -> list[str]:
        phases = []
        for text in self.texts(task_id):
            if text.startswith('{"ts"'):
                phase = json.loads(text)["phase"]
                if not phases or phases[-1] != phase:
                    phases.append(phase)
        return phases
