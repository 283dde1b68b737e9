"""The agent image, run the way the cluster would run it.

The chart is installed into the test control plane; the real Kubernetes backend (through the
service) creates the task's Job there; the job controller creates its Pod. That Pod, exactly as
the API server holds it (env from the chart's ConfigMap and the LLM Secret, the task context in
the downward-API volume, the read-only root, user 1000, the emptyDirs, the termination message
path), is then run with podman from the image built by `make image`, against a git daemon and the
scripted model on 127.0.0.1. Its termination message goes back to the control plane (the kwok pod
finishes with it), and the server reads the result from there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_server.config import load_settings
from mcp_server.models import SpawnTaskRequest, TaskRequest
from mcp_server.service import RunnerService
from tests.conftest import wait_until
from tests.e2e.conftest import FINAL_TEXT, IMAGE_REPOSITORY, IMAGE_TAG, TASK_BRANCH, edit_script
from tests.support.git_remotes import BASE_BRANCH, BareRemote, git, git_daemon
from tests.support.pod_podman import decode_secret, run_pod
from tests.support.runner_env import Cluster, install_chart, server_env
from tests.support.runner_harness import REPO_ROOT, SCRIPTED_API_KEY
from tests.support.scripted_model import ScriptedModel
from tests.support.testenv import TestEnv

pytestmark = pytest.mark.e2e

CONTAINERS_CONF = REPO_ROOT / "container" / "containers.conf"


def test_the_task_runs_in_the_image_as_the_cluster_would_run_it(
    testenv: TestEnv, namespace: str, remote: BareRemote, agent_image: str, tmp_path: Path
) -> None:
    cluster = Cluster(testenv, namespace)
    testenv.kubectl(
        "create", "secret", "generic", "llm", "-n", namespace, f"--from-literal=SCRIPTED_API_KEY={SCRIPTED_API_KEY}"
    )
    developer = tmp_path / "dev" / "project"
    git("clone", "-q", "--branch", BASE_BRANCH, remote.url, str(developer))
    base_sha = remote.sha(BASE_BRANCH)

    with git_daemon(remote.path.parent) as prefix, ScriptedModel(edit_script()) as model:
        url = f"{prefix}/{remote.path.name}"
        install_chart(
            testenv,
            namespace,
            {
                "image": {"repository": IMAGE_REPOSITORY, "tag": IMAGE_TAG, "pullPolicy": "Never"},
                "externalSecrets": {"enabled": False},
                "existingSecret": {"llm": "llm"},
                "opencode": {"model": model.model},
                "extraEnv": [
                    {"name": "AGENTIC_OPENCODE_CONFIG", "value": json.dumps(model.opencode_config())},
                    {"name": "npm_config_registry", "value": "http://127.0.0.1:9/"},
                ],
            },
        )
        kubeconfig = str(testenv.kubeconfig("developer"))
        environ = server_env(testenv, namespace, developer, AGENTIC_KUBECONFIG=kubeconfig)
        service = RunnerService(load_settings(environ=environ))
        handle = service.spawn_task(SpawnTaskRequest(
            task_id="T001",
            description="Change the greeting in README.md to 'hello agent'",
            repo=url,
            base_branch=BASE_BRANCH,
            feature_dir="specs/001-feature",
            context_files=["specs/001-feature/plan.md"],
        ))
        pod_name = cluster.pod_of(handle.job, running=False)
        pod = cluster.get("pod", pod_name)

        def configmap(name: str) -> dict[str, str]:
            return dict(cluster.get("configmap", name).get("data") or {})

        def secret(name: str) -> dict[str, str]:
            return decode_secret(cluster.get("secret", name))

        run = run_pod(pod, configmap, secret, tmp_path / "pod", CONTAINERS_CONF)
        assert run.exit_code == 0, run.stdout[-6000:]

        # the pod as the server made it: read-only root, user 1000, the context from the annotation
        agent = pod["spec"]["containers"][0]
        assert agent["image"] == agent_image and agent["securityContext"]["readOnlyRootFilesystem"] is True
        context = json.loads(pod["metadata"]["annotations"]["agentic-sdlc.dev/task-context"])
        assert context["task_branch"] == TASK_BRANCH and context["repo"] == url

    result = json.loads(run.termination_message)
    assert result == {
        "task_id": "T001",
        "status": "succeeded",
        "branch": TASK_BRANCH,
        "base": BASE_BRANCH,
        "commits": 1,
        "head_sha": remote.sha(TASK_BRANCH),
        "pushed": True,
        "files_changed": ["README.md"],
        "summary": FINAL_TEXT,
        "error": None,
    }
    lines = run.stdout.splitlines()
    assert lines[-1] == "AGENTIC_RESULT: " + run.termination_message
    assert remote.show(TASK_BRANCH, "README.md") == "hello agent\n"
    assert remote.sha(BASE_BRANCH) == base_sha
    assert SCRIPTED_API_KEY not in run.stdout
    phases = [json.loads(ln)["phase"] for ln in lines if ln.startswith('{"ts"')]
    assert phases[0] == "setup" and phases[-1] == "done"
    # the clone went to the workspace emptyDir as user 1000, the image itself stayed untouched
    checkout = run.volumes / "workspace" / "project"
    assert (checkout / "README.md").read_text() == "hello agent\n" and checkout.stat().st_uid == 1000

    # back in the cluster: the pod ends with this termination message; the server reads the result
    cluster.finish(pod_name, 0, run.termination_message)
    status = wait_until(
        lambda: (s := service.status(TaskRequest(task_id="T001"))).phase == "succeeded" and s,
        timeout=60,
        message="the task to be succeeded",
    )
    assert status.result is not None and status.result.head_sha == result["head_sha"]
    assert status.result.summary == FINAL_TEXT
