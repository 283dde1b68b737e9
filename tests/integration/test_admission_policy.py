"""The chart's ValidatingAdmissionPolicy on the real API server (issue 10): Jobs in the release's
namespace are admitted only in the PodTemplate's shape. The runner's own Jobs (spawned through the
service as the `developer` user, the Role's subject) are admitted, with the git Secret a task may
select; every Job that the same subject shapes to reach the release's Secrets is refused with the
policy's message, and nothing is created."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mcp_server import naming
from mcp_server.config import load_settings
from mcp_server.models import SpawnTaskRequest
from mcp_server.service import RunnerService
from tests.conftest import wait_until
from tests.support.runner_env import FEATURE, ORIGIN, RELEASE, Cluster, install_chart, make_repo, server_env
from tests.support.testenv import TestEnv

pytestmark = pytest.mark.integration

FULLNAME = RELEASE  # it holds the chart's name: the chart's fullname is the release name
VALUES = {
    "git": {"auth": "ssh", "secrets": ["deploy-key-a"]},
    "externalSecrets": {"enabled": False},
    "existingSecret": {"git": "team-git", "llm": "team-llm"},
}

Obj = dict[str, Any]


def policy_name(namespace: str) -> str:
    return f"{FULLNAME}.{namespace}.jobs.agentic-sdlc.dev"


def denied_prefix(namespace: str, job: str) -> str:
    name = policy_name(namespace)
    return (f'jobs.batch "{job}" is forbidden: ValidatingAdmissionPolicy \'{name}\' with binding \'{name}\' '
            f"denied request: ValidatingAdmissionPolicy {name} admits a Job in namespace {namespace} only in "
            f"the shape of the PodTemplate {FULLNAME}-agent: ")


@pytest.fixture
def world(testenv: TestEnv, namespace: str, tmp_path: Path) -> tuple[RunnerService, Cluster]:
    install_chart(testenv, namespace, VALUES)
    repo = make_repo(tmp_path / "repo")
    environ = server_env(testenv, namespace, repo, AGENTIC_KUBECONFIG=str(testenv.kubeconfig("developer")))
    service = RunnerService(load_settings(environ=environ))
    wait_for_the_policy(testenv, namespace, service)
    return service, Cluster(testenv, namespace)


def wait_for_the_policy(testenv: TestEnv, namespace: str, service: RunnerService) -> None:
    """A new policy binding takes effect a moment after it is created (the API server's admission
    plugin learns of it through a watch): wait until a server-side dry run of a bad Job is refused."""
    probe = server_manifest(service, "T000")
    shared_process_namespace(spec_of(probe))

    def refused() -> bool:
        proc = testenv.kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-", check=False,
                               input=json.dumps(probe))
        # before that: admitted, or refused for want of the PodTemplate the policy has not seen yet
        return proc.returncode != 0 and "its pod's shareProcessNamespace is not the PodTemplate's" in proc.stderr

    wait_until(refused, timeout=30, message="the admission policy to take effect")


def server_manifest(service: RunnerService, task_id: str) -> Obj:
    """The Job the server would create for a task (its kubernetes backend's manifest)."""
    backend = service.backend(None)
    spec = service._spec(backend, task_id=task_id, description="d", repo_url=ORIGIN, base_branch=FEATURE,
                         timeout_minutes=None, model=None, agent=None, feature_dir=None, context_files=[])
    return copy.deepcopy(backend.job_manifest(spec))  # type: ignore[attr-defined]


def create_as_developer(testenv: TestEnv, namespace: str, manifest: Obj) -> subprocess.CompletedProcess[str]:
    return testenv.kubectl("create", "-n", namespace, "-f", "-", who="developer", check=False,
                           input=json.dumps(manifest))


def spec_of(job: Obj) -> Obj:
    return job["spec"]["template"]["spec"]


def test_the_runners_own_jobs_are_admitted(world: tuple[RunnerService, Cluster]) -> None:
    service, cluster = world
    default = service.spawn_task(SpawnTaskRequest(task_id="T001", description="d", repo=ORIGIN))
    selected = service.spawn_task(SpawnTaskRequest(task_id="T002", description="d", repo=ORIGIN,
                                                   ssh_secret="deploy-key-a"))
    secrets = {}
    for handle in (default, selected):
        job = cluster.get("job", handle.job)
        (volume,) = [v for v in spec_of(job)["volumes"] if v["name"] == "git-credentials"]
        secrets[handle.task_id] = volume["secret"]["secretName"]
    assert secrets == {"T001": "team-git", "T002": "deploy-key-a"}
    assert job["metadata"]["annotations"]["agentic-sdlc.dev/ssh-secret"] == "deploy-key-a"


def _container(pod: Obj, name: str) -> Obj:
    return next(c for c in pod.get("initContainers", []) + pod["containers"] if c["name"] == name)


def thief_container(pod: Obj) -> None:
    """A container of the subject's own that mounts the git credential and prints it."""
    pod["containers"].append({"name": "thief", "image": _container(pod, "agent")["image"],
                              "command": ["/bin/sh", "-c", "cat /creds/*"],
                              "volumeMounts": [{"name": "git-credentials", "mountPath": "/creds"}]})


def agent_mounts_the_git_secret(pod: Obj) -> None:
    _container(pod, "agent")["volumeMounts"].append({"name": "git-credentials", "mountPath": "/creds"})


def agent_gets_the_llm_secret_as_env(pod: Obj) -> None:
    _container(pod, "agent")["envFrom"].append({"secretRef": {"name": "team-llm"}})


def agent_runs_a_shell(pod: Obj) -> None:
    _container(pod, "agent")["command"] = ["/bin/sh", "-c", "cat /proc/*/environ"]


def git_push_runs_a_shell(pod: Obj) -> None:
    _container(pod, "git-push")["command"] = ["/bin/sh", "-c", "cat /etc/agentic-sdlc/git/*"]


def another_image(pod: Obj) -> None:
    _container(pod, "git-clone")["image"] = "docker.io/library/busybox:latest"


def git_credentials_from_the_llm_secret(pod: Obj) -> None:
    next(v for v in pod["volumes"] if v["name"] == "git-credentials")["secret"]["secretName"] = "team-llm"


def llm_secret_as_another_volume(pod: Obj) -> None:
    pod["volumes"].append({"name": "more", "secret": {"secretName": "team-llm"}})


def workspace_from_the_host(pod: Obj) -> None:
    workspace = next(v for v in pod["volumes"] if v["name"] == "workspace")
    workspace.pop("emptyDir")
    workspace["hostPath"] = {"path": "/"}


def agent_as_the_git_user(pod: Obj) -> None:
    _container(pod, "agent")["securityContext"]["runAsUser"] = 1001


def shared_process_namespace(pod: Obj) -> None:
    pod["shareProcessNamespace"] = True


def pinned_to_a_node(pod: Obj) -> None:
    pod["nodeName"] = "some-node"


def another_service_account(pod: Obj) -> None:
    pod["serviceAccountName"] = "default"


def no_llm_proxy(pod: Obj) -> None:
    pod["initContainers"] = [c for c in pod["initContainers"] if c["name"] != "llm-proxy"]


ATTACKS: list[tuple[Callable[[Obj], None], str]] = [
    (thief_container, "its pod's containers is not the PodTemplate's"),
    (agent_mounts_the_git_secret, "its pod's containers is not the PodTemplate's"),
    (agent_gets_the_llm_secret_as_env, "its pod's containers is not the PodTemplate's"),
    (agent_runs_a_shell, "its pod's containers is not the PodTemplate's"),
    (git_push_runs_a_shell, "its pod's initContainers is not the PodTemplate's"),
    (another_image, "its pod's initContainers is not the PodTemplate's"),
    (no_llm_proxy, "its pod's initContainers is not the PodTemplate's"),
    (agent_as_the_git_user, "its pod's containers is not the PodTemplate's"),
    (shared_process_namespace, "its pod's shareProcessNamespace is not the PodTemplate's"),
    (pinned_to_a_node, "its pod's nodeName is not the PodTemplate's"),
    (another_service_account, "its pod's serviceAccountName is not the PodTemplate's"),
]
VOLUME_MESSAGE = ("its pod's volumes differ from the PodTemplate's (the git-credentials Secret may only be one of "
                  "its agentic-sdlc.dev/git-secrets)")
ATTACKS += [(git_credentials_from_the_llm_secret, VOLUME_MESSAGE), (llm_secret_as_another_volume, VOLUME_MESSAGE),
            (workspace_from_the_host, VOLUME_MESSAGE)]


@pytest.mark.parametrize(("attack", "message"), ATTACKS, ids=[a.__name__ for a, _ in ATTACKS])
def test_a_job_shaped_to_reach_the_secrets_is_refused_and_nothing_is_created(
        testenv: TestEnv, namespace: str, world: tuple[RunnerService, Cluster],
        attack: Callable[[Obj], None], message: str) -> None:
    """The Role's subject makes the Job the server would make, then changes the one thing; the API
    server refuses it naming the policy, and creates nothing (no Job, no pod)."""
    service, cluster = world
    manifest = server_manifest(service, "T009")
    name = manifest["metadata"]["name"] = "not-a-task"
    attack(spec_of(manifest))
    created = create_as_developer(testenv, namespace, manifest)
    assert created.returncode == 1
    assert created.stderr.strip() == 'Error from server (Forbidden): error when creating "STDIN": ' + (
        denied_prefix(namespace, name) + message)
    for kind in ("jobs", "pods"):
        assert testenv.kubectl("get", kind, "-n", namespace, "-o", "name").stdout == "", kind


def test_the_shape_the_server_makes_is_admitted_from_the_same_subject(
        testenv: TestEnv, namespace: str, world: tuple[RunnerService, Cluster]) -> None:
    """The refusals above are the policy's, not RBAC's: the unchanged manifest is admitted."""
    service, cluster = world
    created = create_as_developer(testenv, namespace, server_manifest(service, "T009"))
    assert created.returncode == 0, created.stderr
    assert [j["metadata"]["name"] for j in cluster.jobs()] == [naming.job_name("T009", FEATURE)]


def test_without_its_podtemplate_no_job_is_admitted(
        testenv: TestEnv, namespace: str, world: tuple[RunnerService, Cluster]) -> None:
    service, cluster = world
    manifest = server_manifest(service, "T010")
    testenv.kubectl("delete", "podtemplate", f"{FULLNAME}-agent", "-n", namespace)
    created = create_as_developer(testenv, namespace, manifest)
    assert created.returncode == 1
    assert "failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction" \
        in created.stderr
    assert cluster.jobs() == []
