"""A benchmark's world on the test control plane: a namespace of its own with the chart installed,
a spec-kit repository, the MCP server's environment, the raw anchor client, and the other MCP
servers the figures are measured beside (the bare SDK server, containers/kubernetes-mcp-server)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.rawkube import RawKube
from tests.support.mcp_client import McpClient, connect
from tests.support.runner_env import Cluster, install_chart, make_repo, server_env
from tests.support.testenv import REPO_ROOT, TestEnv

BARE_SERVER = Path(__file__).resolve().parent / "anchors" / "bare_sdk_server.py"
INSTALL_KMCP = REPO_ROOT / "scripts" / "install-kubernetes-mcp-server.sh"


def kubernetes_mcp_server() -> str:
    """The pinned kubernetes-mcp-server binary (scripts/install-kubernetes-mcp-server.sh, cached)."""
    proc = subprocess.run([str(INSTALL_KMCP)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{INSTALL_KMCP.name} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


@dataclass
class World:
    testenv: TestEnv
    namespace: str
    repo: Path
    kmcp: str
    seed_namespace: str
    """A plain namespace beside it (no chart, no admission policy) for the seed's own Jobs, which are
    not in the chart's shape: the policy refuses them in `namespace`."""

    @property
    def cluster(self) -> Cluster:
        return Cluster(self.testenv, self.namespace)

    def env(self) -> dict[str, str]:
        return server_env(self.testenv, self.namespace, self.repo)

    def raw(self, who: str = "developer") -> RawKube:
        return RawKube(self.testenv.kubeconfig(who))

    @property
    def jobs_path(self) -> str:
        return f"/apis/batch/v1/namespaces/{self.namespace}/jobs"

    @property
    def pods_path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods"

    def connect(self) -> Any:
        """The project's MCP server over stdio."""
        return connect(self.env(), errlog=_quiet())

    @asynccontextmanager
    async def connect_kmcp(self, who: str = "developer") -> AsyncIterator[McpClient]:
        """containers/kubernetes-mcp-server over stdio, with `who`'s kubeconfig, this namespace as default."""
        kubeconfig = self.repo.parent / f"kmcp-{who}.kubeconfig"
        if not kubeconfig.exists():
            text = self.testenv.kubeconfig(who).read_text()
            kubeconfig.write_text(text.replace("    user: ", f"    namespace: {self.namespace}\n    user: ", 1))
        args = ["--kubeconfig", str(kubeconfig), "--disable-multi-cluster"]
        async with connect({"HOME": str(self.repo.parent / "home")}, errlog=_quiet(), command=self.kmcp,
                           args=args) as client:
            yield client

    def bare_server(self) -> Any:
        return connect(self.env(), errlog=_quiet(), command=sys.executable, args=[str(BARE_SERVER)])

    def wait_pods_running(self, count: int, timeout: float = 900, logs: bool = True) -> list[str]:
        """Wait until `count` task pods run (and, with `logs`, have their log files); their names."""
        admin = RawKube(self.testenv.kubeconfig("admin"))
        log_dir = self.testenv.state_dir / "pod-logs" / self.namespace
        deadline = time.monotonic() + timeout
        try:
            while True:
                pods = admin.request("GET", self.pods_path)["items"]
                running = [p["metadata"]["name"] for p in pods if p.get("status", {}).get("phase") == "Running"]
                have_logs = len(list(log_dir.glob("*.log"))) if log_dir.exists() else 0
                if len(running) >= count and (not logs or have_logs >= count):
                    return sorted(running)
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {len(running)} of {count} pods run in {self.namespace} "
                                     f"({have_logs} log files) after {timeout:.0f} s")
                time.sleep(1)
        finally:
            admin.close()


def _quiet() -> Any:
    return open(os.devnull, "w")  # noqa: SIM115 - held by the stdio client for the process's life


@contextmanager
def world(testenv: TestEnv, kmcp: str, values: dict[str, Any] | None = None, tag: str = "bench") -> Iterator[World]:
    """A namespace with the chart installed and a repository beside it; the namespace is deleted after,
    and waited for: the next figure starts on a quiet control plane (a thousand pods still being
    deleted doubled the log relay's p95)."""
    import tempfile

    name = f"{tag}-{uuid.uuid4().hex[:6]}"
    seed = f"{name}-seed"
    testenv.kubectl("create", "namespace", name)
    testenv.kubectl("create", "namespace", seed)
    try:
        install_chart(testenv, name, values)
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            (Path(tmp) / "home").mkdir()
            yield World(testenv, name, make_repo(Path(tmp) / "repo"), kmcp, seed)
    finally:
        for namespace in (name, seed):
            testenv.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        for namespace in (name, seed):
            testenv.kubectl("wait", "--for=delete", f"namespace/{namespace}", "--timeout=600s", check=False,
                            timeout=660)
