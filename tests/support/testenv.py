"""Access to the test control plane started by scripts/testenv.sh (real etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok on 127.0.0.1, and one real node: a kubelet with
containerd, scripts/testenv-node.sh)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kubernetes import client, config

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTENV_SCRIPT = REPO_ROOT / "scripts" / "testenv.sh"

IDENTITIES = ("admin", "developer", "stranger")

REAL_NODE_LABEL = "agentic-sdlc.dev/node"
REAL_NODE_VALUE = "real"
REAL_NODE_SELECTOR = {REAL_NODE_LABEL: REAL_NODE_VALUE}
REAL_NODE_TOLERATIONS = [
    {"key": REAL_NODE_LABEL, "operator": "Equal", "value": REAL_NODE_VALUE, "effect": "NoSchedule"}
]


@dataclass(frozen=True)
class RealNode:
    """The control plane's real node (its state file `node.env`): pods that select its label and
    tolerate its taint run there for real."""

    name: str
    gateway: str
    """The bridge's host-side address: the one address of this machine pods reach. Bind the servers
    a pod must talk to (git daemon, scripted model) to it."""
    bridge: str
    subnet: str
    cgroup_root: str
    containerd_socket: Path
    ctr: Path

    @classmethod
    def read(cls, state_dir: Path) -> RealNode:
        values = dict(
            line.split("=", 1) for line in (state_dir / "node.env").read_text().splitlines() if "=" in line
        )
        return cls(
            name=values["NODE_NAME"],
            gateway=values["NODE_GATEWAY"],
            bridge=values["NODE_BRIDGE"],
            subnet=values["NODE_SUBNET"],
            cgroup_root=values["NODE_CGROUP_ROOT"],
            containerd_socket=Path(values["CONTAINERD_SOCKET"]),
            ctr=Path(values["CTR"]),
        )

    def ctr_run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`ctr` against the node's containerd, namespace k8s.io (the kubelet's)."""
        return subprocess.run(
            [str(self.ctr), "--address", str(self.containerd_socket), "--namespace", "k8s.io", *args],
            capture_output=True, text=True, check=True, timeout=60,
        )


class TestEnvError(RuntimeError):
    """The control plane could not be started or reached."""


class CommandFailed(subprocess.CalledProcessError):
    """A kubectl/helm run that failed; its message carries the end of the command's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{(self.stderr or '')[-4000:]}"


def _parse_exports(text: str) -> dict[str, str]:
    exports: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export ") :].split("=", 1)
            exports[key] = value
    return exports


@dataclass(frozen=True)
class TestEnv:
    """A running test control plane: its state directory, pinned binaries and identities."""

    state_dir: Path
    bin_dir: Path

    __test__ = False  # not a pytest test class

    @classmethod
    def up(cls) -> tuple[TestEnv, bool]:
        """Start (or reuse) the control plane. Returns it and whether this call started it."""
        was_running = subprocess.run(
            [str(TESTENV_SCRIPT), "status"], capture_output=True, text=True
        ).returncode == 0
        proc = subprocess.run([str(TESTENV_SCRIPT), "up"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise TestEnvError(
                f"scripts/testenv.sh up failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}"
            )
        exports = _parse_exports(proc.stdout)
        bin_dir = Path(exports["PATH"].split(":", 1)[0])
        return cls(state_dir=Path(exports["AGENTIC_TESTENV_DIR"]), bin_dir=bin_dir), not was_running

    @staticmethod
    def down() -> None:
        subprocess.run([str(TESTENV_SCRIPT), "down"], capture_output=True, text=True, check=True)

    def kubeconfig(self, who: str = "admin") -> Path:
        if who not in IDENTITIES:
            raise ValueError(f"unknown identity {who!r}; known: {', '.join(IDENTITIES)}")
        return self.state_dir / ("kubeconfig" if who == "admin" else f"{who}.kubeconfig")

    def environ(self, who: str = "admin") -> dict[str, str]:
        """os.environ with KUBECONFIG for `who` and the pinned helm/kubectl/kwok first on PATH."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig(who))
        env["PATH"] = f"{self.bin_dir}:{env.get('PATH', '')}"
        env["AGENTIC_TESTENV_DIR"] = str(self.state_dir)
        return env

    def api_client(self, who: str = "admin") -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig(who)))

    def kubectl(self, *args: str, who: str = "admin", check: bool = True, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self._run("kubectl", args, who, check, input, timeout)

    def helm(self, *args: str, who: str = "admin", check: bool = True,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self._run("helm", args, who, check, None, timeout)

    def _run(self, tool: str, args: tuple[str, ...], who: str, check: bool, input: str | None,
             timeout: float) -> subprocess.CompletedProcess[str]:
        """Run kubectl/helm as `who`; with `check`, a failure raises naming the command and its stderr."""
        proc = subprocess.run(
            [str(self.bin_dir / tool), *args], env=self.environ(who), capture_output=True,
            text=True, input=input, timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise CommandFailed(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc

    @property
    def node(self) -> RealNode:
        return RealNode.read(self.state_dir)

    def import_image(self, image: str) -> None:
        """Put a podman image into the real node's containerd (once per image id)."""
        proc = subprocess.run([str(TESTENV_SCRIPT), "import-image", image], capture_output=True, text=True,
                              env=self.environ(), timeout=600)
        if proc.returncode != 0:
            raise TestEnvError(f"scripts/testenv.sh import-image {image} failed:\n{proc.stderr[-4000:]}")

    def restart(self, component: str) -> None:
        """Kill one component and start it again on the same ports."""
        self._component("restart", component)

    def stop(self, component: str) -> None:
        """Stop one component and leave it stopped (`start` brings it back)."""
        self._component("stop", component)

    def start(self, component: str) -> None:
        """Start a stopped component again on the same ports."""
        self._component("start", component)

    def _component(self, verb: str, component: str) -> None:
        proc = subprocess.run([str(TESTENV_SCRIPT), verb, component], capture_output=True, text=True,
                              env=self.environ())
        if proc.returncode != 0:
            raise TestEnvError(f"{verb} {component} failed:\n{proc.stderr[-4000:]}")

    # -- container logs served by kwok ---------------------------------------------------------

    def pod_log_file(self, namespace: str, pod: str, timeout: float = 30) -> Path:
        """The file kwok serves as the pod's container log (made by the log provisioner)."""
        path = self.state_dir / "pod-logs" / namespace / f"{pod}.log"
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                raise TestEnvError(f"no log file for pod {namespace}/{pod} after {timeout}s")
            time.sleep(0.1)
        return path

    def provision_logs(self, namespace: str, pods: Iterable[str]) -> None:
        """What the log provisioner does for each new pod (a kwok `Logs` object and an empty log file),
        for many pods at once: one `kubectl apply` (the provisioner goes one pod at a time)."""
        directory = self.state_dir / "pod-logs" / namespace
        directory.mkdir(parents=True, exist_ok=True)
        docs = []
        for pod in pods:
            path = directory / f"{pod}.log"
            docs.append({
                "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
                "metadata": {"name": pod, "namespace": namespace},
                "spec": {"logs": [{"logsFile": str(path), "follow": True}]},
            })
        if docs:  # as the provisioner applies them (scripts/testenv.sh): one field manager, no race
            self.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager", "log-provisioner",
                         "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
                         timeout=600)
        for doc in docs:
            path = Path(doc["spec"]["logs"][0]["logsFile"])
            if not path.exists():
                path.touch()

    def append_log(self, namespace: str, pod: str, *lines: str, stream: str = "stdout") -> None:
        """Make the pod's container 'print' lines: append them in CRI log format."""
        path = self.pod_log_file(namespace, pod)
        with path.open("a", encoding="utf-8") as f:
            for line in lines:
                stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                f.write(f"{stamp} {stream} F {line}\n")
