"""The local backend's podman mode, up to the podman command lines: the chart's pod rendered by the real
helm and translated container by container (`mcp_server.backends.local_podman`), and every guard of
its settings refusing before anything is made. The run itself, with the agent image and the evil
agent: tests/e2e/test_local_podman.py."""

from __future__ import annotations

import copy
import json
import os
import secrets
import shlex
from pathlib import Path

import pytest
import yaml

from mcp_server.backends import local_podman
from mcp_server.backends.local import LocalBackend
from mcp_server.backends.local_podman import PodmanSettings, PodTranslator
from mcp_server.config import load_settings
from mcp_server.errors import ConfigError
from mcp_server.models import TaskSpec
from tests.support.git_remotes import BASE_BRANCH, git, make_bare_remote
from tests.support.testenv import TestEnv

KEY = "sk-plan-" + secrets.token_hex(8)  # made at run time, as every test key
PROVIDERS = [{"name": "scripted", "upstream": "http://10.0.2.2:9999/v1", "header": "Authorization",
              "valuePrefix": "Bearer ", "secretKey": "SCRIPTED_API_KEY", "insecure": True}]


def _environ(testenv: TestEnv, tmp_path: Path, **extra: str) -> dict[str, str]:
    values = tmp_path / "local-values.yaml"
    values.write_text(yaml.safe_dump({"llmProxy": {"providers": PROVIDERS},
                                      "resources": {"limits": {"memory": "1Gi", "cpu": "1500m"}}}))
    return {**os.environ, "AGENTIC_HELM": str(testenv.bin_dir / "helm"), "AGENTIC_LOCAL_VALUES": str(values),
            "AGENTIC_LOCAL_IMAGE": "localhost/agentic-sdlc-agent-runner:plan", "SCRIPTED_API_KEY": KEY, **extra}


def _plan(environ: dict[str, str], workdir: Path) -> tuple[local_podman.PodPlan, dict]:
    settings = PodmanSettings.from_environ(environ)
    template, configmaps = local_podman.render(settings, environ)
    workdir.mkdir()
    context = json.dumps({"task_id": "T001", "repo": "git@github.com:o/r.git"})
    translator = PodTranslator(template, configmaps, lambda _s, key: environ.get(key), workdir, "agentic-t001",
                               context, {"push-queue": workdir / "queue"}, settings.podman)
    return translator.plan("slirp4netns"), template


def _option(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == name]


def test_the_charts_pod_becomes_a_podman_pod_with_the_charts_containers_users_and_mounts(
        testenv: TestEnv, tmp_path: Path) -> None:
    environ = _environ(testenv, tmp_path)
    plan, template = _plan(environ, tmp_path / "pod")
    assert plan.create[:5] == [plan.create[0], "pod", "create", "--name", "agentic-t001"]
    assert _option(plan.create, "--network") == ["slirp4netns"]
    assert _option(plan.create, "--share") == ["ipc,net,uts"]  # no shared process namespace
    assert [s.name for s in plan.sidecars] == ["llm-proxy"]
    proxy, agent = plan.sidecars[0], plan.agent

    # each container under the chart's own uid, with the chart's security context
    assert _option(agent.args, "--user") == ["1000:1000"] and _option(proxy.args, "--user") == ["1002:1002"]
    for run in (agent, proxy):
        assert "--read-only" in run.args and "--cap-drop=ALL" in run.args
        assert _option(run.args, "--security-opt") == ["no-new-privileges"]
        assert _option(run.args, "--pod") == ["agentic-t001"] and _option(run.args, "--pull") == ["never"]
        assert "localhost/agentic-sdlc-agent-runner:plan" in run.args
    assert _option(agent.args, "--memory") == [str(2**30)] and _option(agent.args, "--cpus") == ["1.5"]
    spec = template["template"]["spec"]
    chart_agent = next(c for c in spec["containers"] if c["name"] == "agent")
    assert "command" not in chart_agent and _option(agent.args, "--entrypoint") == []  # the image's entrypoint
    chart_proxy = next(c for c in spec["initContainers"] if c["name"] == "llm-proxy")
    assert json.loads(_option(proxy.args, "--entrypoint")[0]) == chart_proxy["command"]
    assert proxy.probe is not None and proxy.probe[-1].startswith("exec 3<>/dev/tcp/127.0.0.1/")

    # mounts: the agent's are the chart's, none of them a Secret; the LLM keys only in the proxy
    def mounts(run: local_podman.ContainerRun) -> dict[str, str]:
        return {m.split(":")[1]: m for m in _option(run.args, "--volume")}
    agent_mounts, proxy_mounts = mounts(agent), mounts(proxy)
    assert set(agent_mounts) == {m["mountPath"] for m in chart_agent["volumeMounts"]} | {"/dev/termination-log"}
    assert agent_mounts["/etc/agentic-sdlc/task"].endswith(":ro")
    assert agent_mounts["/run/agentic/push"].split(":")[0] == str(tmp_path / "pod" / "queue")
    keys_dir = Path(proxy_mounts["/etc/agentic-sdlc/llm"].split(":")[0])
    assert proxy_mounts["/etc/agentic-sdlc/llm"].endswith(":ro")
    assert not any(str(keys_dir) in m for m in agent_mounts.values())
    key_file = keys_dir / "SCRIPTED_API_KEY"
    assert key_file.read_text() == KEY
    assert (key_file.stat().st_mode & 0o777, key_file.stat().st_uid) == (0o400, 1002)
    assert (keys_dir.stat().st_mode & 0o777, keys_dir.stat().st_uid) == (0o500, 1002)
    task_file = Path(agent_mounts["/etc/agentic-sdlc/task"].split(":")[0]) / "context.json"
    assert json.loads(task_file.read_text())["task_id"] == "T001"

    # the environment: the chart's, with no key and no git credential; nothing secret on a command line
    agent_env = dict(line.split("=", 1) for line in Path(_option(agent.args, "--env-file")[0]).read_text().splitlines())
    assert agent_env["AGENTIC_GIT_AUTH"] == "none" and agent_env["AGENTIC_PUSH_QUEUE"] == "/run/agentic/push"
    assert agent_env["AGENTIC_RESULT_FILE"] == "/dev/termination-log"
    assert "scripted" in agent_env["AGENTIC_LLM_PROXY"]
    env_files = [Path(_option(r.args, "--env-file")[0]) for r in (agent, proxy)]
    for text in [*(p.read_text() for p in env_files), shlex.join(agent.args), shlex.join(proxy.args)]:
        assert KEY not in text
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in env_files)


def test_a_pod_the_translation_does_not_know_is_refused_naming_what(testenv: TestEnv, tmp_path: Path) -> None:
    environ = _environ(testenv, tmp_path)
    settings = PodmanSettings.from_environ(environ)
    template, configmaps = local_podman.render(settings, environ)

    def refused(change, match: str) -> None:  # type: ignore[no-untyped-def]
        changed = copy.deepcopy(template)
        change(changed["template"]["spec"])
        workdir = tmp_path / f"w{len(list(tmp_path.iterdir()))}"
        workdir.mkdir()
        translator = PodTranslator(changed, configmaps, lambda _s, k: environ.get(k), workdir, "p", "{}", {})
        with pytest.raises(ConfigError, match=match):
            translator.plan(None)

    def host_path(spec: dict) -> None:
        spec["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
        next(c for c in spec["containers"] if c["name"] == "agent")["volumeMounts"].append(
            {"name": "host", "mountPath": "/host"})

    def secret_env(spec: dict) -> None:
        next(c for c in spec["containers"] if c["name"] == "agent")["envFrom"].append({"secretRef": {"name": "x"}})

    def other_secret(spec: dict) -> None:
        spec["volumes"].append({"name": "git", "secret": {"secretName": "agentic-git"}})
        next(c for c in spec["containers"] if c["name"] == "agent")["volumeMounts"].append(
            {"name": "git", "mountPath": "/git"})

    refused(host_path, r"volume 'host' is of a kind the podman mode does not translate \(\['hostPath'\]\)")
    refused(secret_env, "takes env from \\['secretRef'\\]")
    refused(other_secret, "mounts the Secret 'agentic-git'")
    refused(lambda s: s["initContainers"].append({"name": "setup", "image": "x", "command": ["true"]}),
            "init container 'setup'")
    refused(lambda s: s["containers"].append({"name": "extra", "image": "x"}), r"\['extra'\]")
    refused(lambda s: s.__setitem__("securityContext", {**s["securityContext"], "fsGroup": 1000}), "fsGroup")


@pytest.mark.parametrize(("extra", "match"), [
    ({"AGENTIC_LOCAL_IMAGE": "Not An Image"}, "AGENTIC_LOCAL_IMAGE: 'Not An Image' is not an image reference"),
    ({"AGENTIC_LOCAL_IMAGE": "localhost/agentic-sdlc-agent-runner:no-such-tag"},
     "AGENTIC_LOCAL_IMAGE: the image localhost/agentic-sdlc-agent-runner:no-such-tag is not in podman's store"),
    ({"AGENTIC_LOCAL_VALUES": "/nonexistent/values.yaml"},
     "AGENTIC_LOCAL_VALUES: /nonexistent/values.yaml is not a file"),
    ({"AGENTIC_LOCAL_CHART": "/tmp"}, "AGENTIC_LOCAL_CHART: /tmp is not the agent-runner chart"),
    ({"AGENTIC_HELM": "/nonexistent/helm"}, "AGENTIC_HELM: /nonexistent/helm is not an executable program"),
    ({"AGENTIC_PODMAN": "/nonexistent/podman"}, "AGENTIC_PODMAN: /nonexistent/podman is not an executable program"),
    ({"AGENTIC_PODMAN": "", "PATH": "/nonexistent"}, "AGENTIC_LOCAL_SANDBOX=podman but podman is not installed"),
])
def test_a_podman_task_that_cannot_run_is_refused_before_anything_is_made(
        testenv: TestEnv, tmp_path: Path, extra: dict[str, str], match: str) -> None:
    remote = make_bare_remote(tmp_path / "remotes")
    repo = tmp_path / "project"
    git("clone", "-q", "--branch", BASE_BRANCH, remote.url, str(repo))
    environ = _environ(testenv, tmp_path, AGENTIC_LOCAL_SANDBOX="podman", **extra)
    settings = load_settings(environ={"AGENTIC_BACKEND": "local", "AGENTIC_REPO_ROOT": str(repo)})
    backend = LocalBackend(settings.environment(), settings, environ=environ)
    spec = TaskSpec(task_id="T001", description="d", repo=remote.url, base_branch=BASE_BRANCH,
                    task_branch=f"agentic/{BASE_BRANCH}/T001", environment="dev")
    with pytest.raises(ConfigError, match=match):
        backend.spawn(spec)
    assert not (repo / ".agentic-sdlc" / "state").exists()  # nothing was made
