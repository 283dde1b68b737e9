"""scripts/testenv.sh's refusals and failure handling: usage errors, a component that fails to
start (named, with its log, leaving nothing running), and a port that is already taken."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.testenv import TESTENV_SCRIPT, TestEnv

pytestmark = pytest.mark.integration


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TESTENV_SCRIPT), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (zombies have none)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline.strip()}")
    return found


@pytest.fixture
def private_state(tmp_path: Path, testenv: TestEnv) -> Iterator[Path]:
    """A second environment's state directory (the binaries are already built by `testenv`)."""
    state = tmp_path / "env"
    yield state
    run("down", env={"AGENTIC_TESTENV_DIR": str(state)})
    assert processes_mentioning(str(state)) == []


@pytest.mark.parametrize("args", [(), ("frobnicate",)])
def test_no_or_unknown_subcommand_prints_usage_and_exits_2(args: tuple[str, ...]) -> None:
    proc = run(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "usage: scripts/testenv.sh up|down|env|status|restart COMPONENT|build" in proc.stderr
    if args:
        assert "testenv: unknown subcommand: frobnicate" in proc.stderr


def test_restart_needs_a_known_component(private_state: Path) -> None:
    proc = run("restart", "kube-proxy", env={"AGENTIC_TESTENV_DIR": str(private_state)})
    assert proc.returncode == 2
    assert "restart needs one of: etcd kube-apiserver kube-controller-manager kube-scheduler kwok" in proc.stderr


def test_env_and_status_of_an_environment_that_is_not_running(private_state: Path) -> None:
    env = {"AGENTIC_TESTENV_DIR": str(private_state)}
    proc = run("env", env=env)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert "not running (start it with: scripts/testenv.sh up)" in proc.stderr
    proc = run("status", env=env)
    assert proc.returncode == 3
    assert proc.stdout == f"testenv: not running (no state in {private_state})\n"


def test_a_component_that_fails_is_named_with_its_log_and_nothing_is_left_running(private_state: Path) -> None:
    proc = run("up", env={"AGENTIC_TESTENV_DIR": str(private_state),
                          "AGENTIC_TESTENV_APISERVER_ARGS": "--no-such-flag"})
    assert proc.returncode == 1
    assert proc.stdout == ""  # nothing to eval
    assert "testenv: FAILED: kube-apiserver: exited before it was ready" in proc.stderr
    assert f"last lines of {private_state}/logs/kube-apiserver.log:" in proc.stderr
    assert "unknown flag: --no-such-flag" in proc.stderr
    # etcd had started before the apiserver failed: it is stopped too.
    assert (private_state / "logs" / "etcd.log").exists()
    assert processes_mentioning(str(private_state)) == []


def test_a_taken_port_is_replaced_by_a_free_one(private_state: Path, testenv: TestEnv) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        env = {"AGENTIC_TESTENV_DIR": str(private_state), "AGENTIC_TESTENV_APISERVER_PORT": str(taken)}
        proc = run("up", env=env)
        assert proc.returncode == 0, proc.stderr
        assert f"testenv: port {taken} is taken, choosing another" in proc.stderr
        server = re.search(r"server: https://127.0.0.1:(\d+)", (private_state / "kubeconfig").read_text())
        assert server and int(server.group(1)) != taken
        assert f"export KUBECONFIG={private_state}/kubeconfig\n" in proc.stdout
        kubectl = subprocess.run(
            [str(testenv.bin_dir / "kubectl"), "--kubeconfig", str(private_state / "kubeconfig"),
             "get", "nodes", "-o", "name"], capture_output=True, text=True,
        )
        assert kubectl.stdout.split() == ["node/kwok-node-0", "node/kwok-node-1"], kubectl.stderr
