"""scripts/testenv.sh's refusals and failure handling: usage errors, a component that fails to
start (named, with its log, leaving nothing running), a port that is already taken, and a real node
whose `down` leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.support.audit import AuditLog, Request
from tests.support.node_images import busybox_image
from tests.support.testenv import REAL_NODE_SELECTOR, REAL_NODE_TOLERATIONS, TESTENV_SCRIPT, RealNode, TestEnv

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
    assert ("usage: scripts/testenv.sh up|down|env|status|restart COMPONENT|stop COMPONENT|start COMPONENT|"
            "import-image IMAGE|build") in proc.stderr
    if args:
        assert "testenv: unknown subcommand: frobnicate" in proc.stderr


@pytest.mark.parametrize("verb", ["restart", "stop", "start"])
@pytest.mark.parametrize("component", ["kube-proxy", ""])
def test_restart_stop_and_start_need_a_known_component(private_state: Path, verb: str, component: str) -> None:
    proc = run(verb, component, env={"AGENTIC_TESTENV_DIR": str(private_state)})
    assert proc.returncode == 2
    assert (f"{verb} needs one of: etcd kube-apiserver kube-controller-manager kube-scheduler kwok log-provisioner "
            "containerd kubelet") in proc.stderr
    assert not private_state.exists()


def test_env_and_status_of_an_environment_that_is_not_running(private_state: Path) -> None:
    env = {"AGENTIC_TESTENV_DIR": str(private_state)}
    proc = run("env", env=env)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert "not running (start it with: scripts/testenv.sh up)" in proc.stderr
    proc = run("status", env=env)
    assert proc.returncode == 3
    assert proc.stdout == f"testenv: not running (no state in {private_state})\n"
    proc = run("import-image", "localhost/x:1", env=env)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert "not running (start it with: scripts/testenv.sh up)" in proc.stderr


def test_import_image_needs_an_image_that_podman_has(testenv: TestEnv) -> None:
    proc = run("import-image", env=testenv.environ())
    assert proc.returncode == 2
    assert "import-image needs an image, e.g. localhost/agentic-sdlc-agent-runner:dev" in proc.stderr
    proc = run("import-image", "localhost/no-such-image:never", env=testenv.environ())
    assert proc.returncode == 1
    assert "FAILED: podman has no image localhost/no-such-image:never (build it first, e.g. make image)" in proc.stderr


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
        assert kubectl.stdout.split() == ["node/kwok-node-0", "node/kwok-node-1", "node/real-node"], kubectl.stderr


KUBELET_SYSCTLS = {  # what the kubelet wants (setupKernelTunables) and values it would change
    "vm.overcommit_memory": ("1", "0"),
    "kernel.panic": ("10", "3"),
    "kernel.panic_on_oops": ("1", "0"),
}


def sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


def set_sysctl(name: str, value: str) -> None:
    Path("/proc/sys", *name.split(".")).write_text(value)


def node_traces(state: Path, node: RealNode) -> list[str]:
    """What a real node could leave on this machine, found now."""
    found = [f"process {p}" for p in processes_mentioning(str(state))]
    found += [f"mount {line.split()[4]}" for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if str(state) in line]
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        if (hierarchy / node.cgroup_root).exists():
            found.append(f"cgroup {hierarchy / node.cgroup_root}")
    if Path("/sys/class/net", node.bridge).exists():
        found.append(f"bridge {node.bridge}")
    return found + host_paths()


def host_paths() -> list[str]:
    """Host paths a kubelet or containerd writes by default (other tools on this machine, podman's
    CNI for one, may have made some: compare with what was there before)."""
    found = [f"path {path}" for path in (
        "/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/run/containerd", "/opt/containerd",
        "/var/lib/cni/networks/agentic-testenv", "/etc/cni/net.d/10-agentic-testenv.conflist", "/var/run/nri",
        "/opt/cni/bin") if Path(path).exists()]
    netns = Path("/var/run/netns")
    return found + ([f"netns {p}" for p in netns.glob("cni-*")] if netns.is_dir() else [])


@pytest.mark.real_node
def test_down_of_a_real_node_leaves_nothing_behind(private_state: Path, testenv: TestEnv, tmp_path: Path) -> None:
    # A private registry: this node is the machine's first, so its `down` restores the settings. They
    # start at values the kubelet changes, so that the restore shows.
    env = {"AGENTIC_TESTENV_DIR": str(private_state), "AGENTIC_TESTENV_NODE_REGISTRY": str(tmp_path / "reg")}
    before = {name: sysctl(name) for name in KUBELET_SYSCTLS}
    paths_before = host_paths()
    for name, (_, start) in KUBELET_SYSCTLS.items():
        set_sysctl(name, start)
    try:
        proc = run("up", env=env)
        assert proc.returncode == 0, proc.stderr
        private = TestEnv(state_dir=private_state, bin_dir=testenv.bin_dir)
        node = private.node
        assert {name: sysctl(name) for name in KUBELET_SYSCTLS} == {n: v[0] for n, v in KUBELET_SYSCTLS.items()}
        status = run("status", env=env)
        assert status.returncode == 0
        for component in ("node-ns", "containerd", "kubelet"):
            assert re.search(rf"^{component} +running \(pid \d+\)$", status.stdout, re.M), status.stdout
        assert f"real node: real-node at {node.gateway} (bridge {node.bridge}" in status.stdout

        # A pod on it: sandbox, network namespace, veth, volumes, cgroups, container log.
        image = busybox_image(private)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "traces", "namespace": "default"},
               "spec": {"nodeSelector": REAL_NODE_SELECTOR, "tolerations": REAL_NODE_TOLERATIONS,
                        "containers": [{"name": "main", "image": image, "imagePullPolicy": "Never",
                                        "command": ["sh", "-c", "echo hi; sleep 300"]}]}}
        private.kubectl("apply", "-f", "-", input=json.dumps(pod))
        wait_until(lambda: private.kubectl("logs", "traces", check=False).stdout == "hi\n", timeout=90,
                   message="the pod on the private real node to print")
        assert node_traces(private_state, node), "a running node shows traces (else this test proves nothing)"

        proc = run("down", env=env)
        assert proc.returncode == 0, proc.stderr
        assert node_traces(private_state, node) == paths_before
        assert not private_state.exists()
        assert {name: sysctl(name) for name in KUBELET_SYSCTLS} == {n: v[1] for n, v in KUBELET_SYSCTLS.items()}
        assert not (tmp_path / "reg").exists()
    finally:
        for name, value in before.items():
            set_sysctl(name, value)


def test_the_audit_log_holds_the_test_identities_requests_and_none_of_the_admins(
    testenv: TestEnv, namespace: str
) -> None:
    """What the benchmarks count API requests with (testenv/audit-policy.yaml): one entry per request
    of developer and stranger, with its verb, resource and namespace; the admin's are not logged."""
    audit = AuditLog.of(testenv.state_dir)
    mark = audit.mark()
    testenv.kubectl("get", "pods", "-n", namespace)
    testenv.kubectl("get", "jobs", "-n", namespace, who="developer", check=False)  # 403: no rights there
    testenv.kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/nope/log", who="stranger", check=False)

    def logged() -> list[Request]:
        return audit.since(mark, namespace=namespace)

    requests = wait_until(lambda: len(logged()) >= 2 and logged(), message="the audit entries")
    assert [(r.user, r.verb, r.resource, r.code) for r in requests] == [
        ("developer", "list", "jobs", 403),
        ("stranger", "get", "pods/log", 403),
    ]
