"""The server's world in the integration tests: the chart installed into a test namespace (with the
`developer` identity as its rbac subject), a git repository with a spec-kit feature, the environment
the server and the CLI run with, and helpers to look at and drive the Jobs and pods they make."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import wait_until
from tests.support.testenv import REPO_ROOT, TestEnv

CHART_DIR = REPO_ROOT / "chart"
RELEASE = "agentic-sdlc-agent-runner-dev"
POD_TEMPLATE = f"{RELEASE}-agent"
ORIGIN = "https://git.example.com/org/repo.git"
FEATURE = "001-feature"
BIN = Path(sys.executable).parent

EXIT_CODE = "testenv.agentic-sdlc.dev/exit-code"
TERMINATION_MESSAGE = "testenv.agentic-sdlc.dev/termination-message"
MANAGED = "app.kubernetes.io/managed-by=agentic-sdlc-agent-runner"

TASKS_MD = """\
# Tasks: 001 feature

## Phase 1
- [X] T001 Create the project skeleton
- [ ] T002 [P] [ASYNC] [US1] Implement the parser in src/parser.py
- [ ] T003 [P] [ASYNC] [US1] Implement the printer in src/printer.py
- [ ] T004 [SYNC] Review the parser API with the team

## Phase 2
- [ ] T005 [ASYNC] [US2] Wire parser and printer together in src/main.py
"""

TASKS_DAG = {"execution_waves": [["T001", "T002", "T003", "T004"], ["T005"]]}


TEST_REPO_HOSTS = [{"host": "git.example.com", "insecure": False}, {"host": "127.0.0.1", "insecure": True}]
"""The repo hosts of the test releases: ORIGIN's, and the test git daemons' (plain git://)."""


def install_chart(
    testenv: TestEnv, namespace: str, values: Mapping[str, Any] | None = None, release: str = RELEASE
) -> None:
    """`helm install` of chart/ into the namespace, the `developer` user as the rbac subject, the test
    repo hosts allowed (unless `values` sets `git.hosts`)."""
    merged: dict[str, Any] = {
        "environment": "dev",
        "rbac": {"subjects": [{"kind": "User", "name": "developer"}]},
        "git": {"hosts": TEST_REPO_HOSTS},
    }
    for key, value in (values or {}).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    values_file = testenv.state_dir / f"values-{namespace}-{release}.yaml"
    values_file.write_text(yaml.safe_dump(merged), encoding="utf-8")
    testenv.helm("install", release, str(CHART_DIR), "-n", namespace, "-f", str(values_file))


def make_repo(path: Path, origin: str = ORIGIN, branch: str = FEATURE) -> Path:
    """A git repository on `branch` with remote `origin` and a spec-kit feature specs/001-feature."""
    path.mkdir(parents=True, exist_ok=True)
    feature = path / "specs" / FEATURE
    feature.mkdir(parents=True)
    (feature / "spec.md").write_text("# Spec\nParse and print things.\n")
    (feature / "plan.md").write_text("# Plan\nsrc/parser.py, src/printer.py, src/main.py\n")
    (feature / "tasks.md").write_text(TASKS_MD)
    (feature / "tasks_dag.json").write_text(json.dumps(TASKS_DAG))
    (path / "README.md").write_text("# repo\n")

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)

    git("init", "-q", "-b", branch)
    git("remote", "add", "origin", origin)
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "init")
    return path


def server_env(
    testenv: TestEnv, namespace: str, repo: Path, who: str = "developer", **extra: str
) -> dict[str, str]:
    """What the MCP server and the CLI run with: the identity's kubeconfig, the test namespace."""
    return {
        "KUBECONFIG": str(testenv.kubeconfig(who)),
        "AGENTIC_BACKEND": "kubernetes",
        "AGENTIC_ENV": "dev",
        "AGENTIC_NAMESPACE": namespace,
        "AGENTIC_REPO_ROOT": str(repo),
        "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(repo.parent / "home"),
        **extra,
    }


@dataclass(frozen=True)
class Cluster:
    """Looks at and drives the test namespace as the admin (not through the code under test)."""

    testenv: TestEnv
    namespace: str

    def get(self, kind: str, name: str | None = None, selector: str = MANAGED) -> Any:
        args = ["get", kind, "-n", self.namespace, "-o", "json"]
        args += [name] if name else ["-l", selector]
        return json.loads(self.testenv.kubectl(*args).stdout)

    def jobs(self) -> list[dict[str, Any]]:
        return self.get("jobs")["items"]

    def pods(self, job: str | None = None) -> list[dict[str, Any]]:
        selector = f"batch.kubernetes.io/job-name={job}" if job else MANAGED
        return self.get("pods", selector=selector)["items"]

    def pod_of(self, job: str, running: bool = True) -> str:
        def find() -> str | None:
            for pod in self.pods(job):
                if not running or pod.get("status", {}).get("phase") == "Running":
                    return str(pod["metadata"]["name"])
            return None

        try:
            return str(wait_until(find, message=f"a running pod of Job {job}"))
        except pytest.fail.Exception as exc:
            pytest.fail(f"{exc}\n{self.why_not_running(job)}")

    def why_not_running(self, job: str) -> str:
        """The Job's pods (phase, conditions) and the namespace's Warning events, for a failure message."""
        lines = []
        for pod in self.pods(job):
            status = pod.get("status", {})
            conditions = [
                f"{c['type']}={c['status']} {c.get('reason', '')} {c.get('message', '')}".strip()
                for c in status.get("conditions") or []
            ]
            lines.append(f"pod {pod['metadata']['name']}: {status.get('phase')}; {'; '.join(conditions)}")
        events = self.testenv.kubectl(
            "get", "events", "-n", self.namespace, "--field-selector", "type=Warning",
            "-o", "custom-columns=OBJECT:.involvedObject.name,REASON:.reason,MESSAGE:.message", "--no-headers",
        ).stdout.strip()
        jobs = [j["metadata"]["name"] for j in self.jobs()]
        return "\n".join(
            [f"Jobs: {jobs}", *(lines or [f"no pod of Job {job}"]), "warning events:", events or "(none)"]
        )

    def finish(self, pod: str, exit_code: int, message: str = "") -> None:
        """Make the pod's container exit (kwok stage pod-complete) with a termination message."""
        args = ["annotate", "pod", pod, "-n", self.namespace, f"{EXIT_CODE}={exit_code}"]
        if message:
            args.append(f"{TERMINATION_MESSAGE}={message}")
        self.testenv.kubectl(*args)

    def log(self, pod: str, *lines: str) -> None:
        self.testenv.append_log(self.namespace, pod, *lines)

    def wait_job_gone(self, name: str) -> None:
        wait_until(
            lambda: all(j["metadata"]["name"] != name for j in self.jobs()),
            timeout=60,
            message=f"Job {name} to be deleted",
        )

    def wait_job_condition(self, name: str, timeout: float = 60) -> str:
        def condition() -> str | None:
            job = self.get("job", name)
            for cond in job.get("status", {}).get("conditions") or []:
                if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
                    return str(cond["type"])
            return None

        return str(wait_until(condition, timeout=timeout, message=f"Job {name} to finish"))


def result_json(task_id: str, status: str = "succeeded", **extra: Any) -> str:
    doc = {
        "task_id": task_id,
        "status": status,
        "branch": f"agentic/{FEATURE}/{task_id}",
        "base": FEATURE,
        "commits": 1,
        "head_sha": "0123456789abcdef0123456789abcdef01234567",
        "pushed": True,
        "files_changed": ["src/parser.py"],
        "summary": f"{task_id} done",
        "error": None,
    }
    doc.update(extra)
    return json.dumps(doc, separators=(",", ":"))
