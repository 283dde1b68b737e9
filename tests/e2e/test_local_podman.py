"""The local backend's podman mode with the real agent image: the chart's pod (rendered by helm) runs
under podman, the agent (uid 1000) beside the LLM proxy (uid 1002, the only holder of the key) in one
podman pod, the supervisor on the host cloning and pushing with the developer's credentials.

The evil agent attacks from inside: it looks for the developer's credentials (an ssh agent socket, a
kubeconfig, tokens, an ssh key, stored git credentials) and the LLM key, plants hooks and config, pushes
past the pusher and asks the pusher for other refs. Every attack fails, the honest work reaches the task
branch, and the key reached the model only through the proxy."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from mcp_server import naming
from mcp_server.backends.local import LocalBackend
from mcp_server.backends.local_podman import pod_name
from mcp_server.config import load_settings
from mcp_server.models import SpawnTaskRequest, TaskRequest
from mcp_server.service import RunnerService
from tests.support import evil_agent
from tests.support.git_remotes import BASE_BRANCH, BareRemote, git
from tests.support.node_images import CONTAINERS_CONF
from tests.support.runner_harness import offline_env
from tests.support.scripted_model import ScriptedModel, Turn, write
from tests.support.testenv import TestEnv

pytestmark = pytest.mark.e2e

TASK_BRANCH = f"agentic/{BASE_BRANCH}/T001"
LLM_KEY = "sk-local-" + secrets.token_hex(12)
# slirp4netns: the pod's own network namespace; the host's loopback (the scripted model) is 10.0.2.2
NETWORK = "slirp4netns:allow_host_loopback=true"
HOST_LOOPBACK = "10.0.2.2"


def podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True,
                          env={**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)})


def podman_environ(tmp_path: Path, model: ScriptedModel, home: Path, image: str, testenv: TestEnv) -> dict[str, str]:
    """The developer's environment for podman tasks: the chart's values for the scripted model (reached
    by the proxy at the host's loopback), the LLM key under the name the provider's secretKey gives."""
    port = model.base_url.rsplit(":", 1)[1].split("/")[0]
    values = tmp_path / "local-values.yaml"
    values.write_text(yaml.safe_dump({
        "opencode": {"model": model.model},
        "llmProxy": {"providers": [
            {"name": "scripted", "upstream": f"http://{HOST_LOOPBACK}:{port}/v1", "header": "Authorization",
             "valuePrefix": "Bearer ", "secretKey": "SCRIPTED_API_KEY", "insecure": True}]},
        "extraEnv": [
            {"name": "AGENTIC_OPENCODE_CONFIG", "value": json.dumps(model.opencode_config())},
            {"name": "npm_config_registry", "value": "http://127.0.0.1:9/"},
        ],
    }))
    return {
        **offline_env(home), "SCRIPTED_API_KEY": LLM_KEY,
        "AGENTIC_LOCAL_SANDBOX": "podman", "AGENTIC_LOCAL_IMAGE": image,
        "AGENTIC_LOCAL_VALUES": str(values), "AGENTIC_LOCAL_PODMAN_NETWORK": NETWORK,
        "AGENTIC_HELM": str(testenv.bin_dir / "helm"), "CONTAINERS_CONF": str(CONTAINERS_CONF),
    }


def test_every_attack_from_the_podman_pod_fails_and_the_honest_work_is_pushed(
        tmp_path: Path, remote: BareRemote, agent_image: str, testenv: TestEnv) -> None:
    dev = evil_agent.DeveloperMachine.make(tmp_path, remote.url, BASE_BRANCH)
    repo, home, common = dev.repo, dev.home, dev.repo / ".git"
    base, main = remote.sha(BASE_BRANCH), remote.sha("main")

    job = naming.job_name("T001", BASE_BRANCH)
    state = repo / ".agentic-sdlc" / "state" / "dev" / job
    targets = evil_agent.Targets(
        repo_url=remote.url, task_branch=TASK_BRANCH, queue="/run/agentic/push",
        credential_files=[*dev.credential_files, "/etc/agentic-sdlc/llm/SCRIPTED_API_KEY",
                          str(state / "pod" / "llm-proxy.env")],
        search_roots=("/tmp", "/run", "/etc/agentic-sdlc", "$HOME", "/workspace", str(tmp_path)),
        evil_url=f"file://{dev.evil}", developer_git_dir=str(common),
        records=[str(state / "process.json"), str(state / "spec.json")],
    )
    with ScriptedModel(evil_agent.script(targets)) as model:
        environ = {
            **podman_environ(tmp_path, model, home, agent_image, testenv), **evil_agent.DEVELOPER_SECRETS,
            "SSH_AUTH_SOCK": str(dev.agent_sock), "KUBECONFIG": str(dev.kubeconfig),
            "GIT_CONFIG_GLOBAL": str(dev.gitconfig),
        }
        environ.pop("GIT_CONFIG_NOSYSTEM", None)
        settings = load_settings(environ={"AGENTIC_BACKEND": "local", "AGENTIC_REPO_ROOT": str(repo)})
        service = RunnerService(settings, backend_factory=lambda env, s: LocalBackend(env, s, environ=environ))
        service.spawn_task(SpawnTaskRequest(task_id="T001", description="Change the greeting in README.md"))
        status = None
        for _ in range(900):
            status = service.status(TaskRequest(task_id="T001"))
            if status.finished:
                break
            time.sleep(0.5)
        assert status is not None and status.finished, status
        log = (state / "log").read_text()
    dev.sock.close()

    assert status.result is not None, log[-5000:]
    assert (status.result.status, status.result.pushed) == ("succeeded", True), log[-6000:]
    assert "in the chart's pod for podman" in log and f"the image {agent_image}" in log
    assert remote.show(TASK_BRANCH, "README.md") == evil_agent.HONEST_TEXT
    assert remote.sha("main") == main and remote.sha(BASE_BRANCH) == base
    assert sorted(remote.branches()) == sorted([BASE_BRANCH, "main", TASK_BRANCH, f"{TASK_BRANCH}-wip-102"])
    answers = {n: json.loads((state / "push-queue" / f"{n}.response.json").read_text()) for n in (101, 102, 103)}
    assert answers[101]["ref"] == f"refs/heads/{TASK_BRANCH}"
    assert answers[102]["fallback_ref"] == f"refs/heads/{TASK_BRANCH}-wip-102"
    assert answers[103]["refused"] == [".github/workflows/evil.yml"]

    # the model got the key from the proxy, on every request; the agent never had it
    assert model.recorded.authorizations and set(model.recorded.authorizations) == {f"Bearer {LLM_KEY}"}

    dev.assert_untouched()  # the developer's repository config, hooks, ~/.gitconfig; the evil remote
    attacks = evil_agent.attack_lines(evil_agent.tool_outputs(log))
    assert "ATTACK plant: developer hook refused" in attacks and "ATTACK plant: developer config refused" in attacks
    assert f"ATTACK plant: {state / 'process.json'} refused" in attacks
    assert f"ATTACK plant: {state / 'spec.json'} refused" in attacks
    names = [line.split(":", 1)[0] for line in attacks]
    for name in ("ATTACK loot", "ATTACK plant", "ATTACK push-main", "ATTACK push-direct", "ATTACK queue-101",
                 "ATTACK queue-102", "ATTACK queue-103"):
        assert name in names, attacks  # every attack was tried
    assert [a for a in attacks if a.startswith("ATTACK push-") and a.endswith("exit 0")] == []

    # nothing of the developer's credentials, nor the LLM key, in what the agent gathered and pushed
    loot = remote.show(TASK_BRANCH, "loot.txt")
    assert "== env" in loot and "-- /proc/1/environ" in loot
    for secret in [*dev.secrets(), LLM_KEY]:
        assert secret not in loot, secret
    env_part = loot.split("== proc", 1)[0]
    assert "SSH_AUTH_SOCK" not in env_part and "KUBECONFIG" not in env_part and "GITHUB_TOKEN" not in env_part
    assert "HOME=/home/agent" in env_part  # the chart's container, not the developer's environment
    # in its own process namespace: only the agent's container's processes (no nginx, no supervisor)
    assert "nginx" not in loot.split("== proc", 1)[1].split("== files", 1)[0]

    # the pod and its volumes are gone; the state keeps the log and the result
    assert podman("pod", "exists", pod_name(job)).returncode == 1
    assert not (state / "pod").exists() and (state / "result.json").is_file()


def test_cancel_stops_the_podman_task_pushes_its_work_so_far_and_removes_the_pod(
        tmp_path: Path, remote: BareRemote, agent_image: str, testenv: TestEnv) -> None:
    repo = tmp_path / "dev" / "project"
    git("clone", "-q", "--branch", BASE_BRANCH, remote.url, str(repo))
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    script = [Turn(tool_calls=(write("docs/T004.md", "# T004\n\nhalf done\n"),)),
              Turn(text="Working on the rest...", hold=True)]
    with ScriptedModel(script) as model:
        environ = podman_environ(tmp_path, model, home, agent_image, testenv)
        settings = load_settings(environ={"AGENTIC_BACKEND": "local", "AGENTIC_REPO_ROOT": str(repo)})
        service = RunnerService(settings, backend_factory=lambda env, s: LocalBackend(env, s, environ=environ))
        handle = service.spawn_task(SpawnTaskRequest(task_id="T004", description="Write docs/T004.md"))
        model.recorded.wait_for(2, timeout=300)  # the file is written, the agent waits on the model
        assert service.status(TaskRequest(task_id="T004")).phase == "running"
        assert podman("pod", "exists", pod_name(handle.job)).returncode == 0

        result = service.cancel(TaskRequest(task_id="T004"))
    branch = f"agentic/{BASE_BRANCH}/T004"
    assert result.deleted_jobs == [handle.job]
    # SIGTERM reached the runner in the container: it committed and pushed the work so far
    assert remote.log(branch)[0].startswith("WIP T004: ")
    assert remote.show(branch, "docs/T004.md") == "# T004\n\nhalf done\n"
    assert result.result is not None and (result.result.status, result.result.pushed) == ("cancelled", True)
    assert result.result.head_sha == remote.sha(branch)
    assert podman("pod", "exists", pod_name(handle.job)).returncode == 1
    assert not (repo / ".agentic-sdlc" / "state" / "dev" / handle.job).exists()
