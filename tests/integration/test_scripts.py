"""scripts/spawn-pod.sh and scripts/tail-logs.sh: the original interface over the CLI, for real."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mcp_server import naming
from tests.support.runner_env import FEATURE, ORIGIN, Cluster, install_chart, make_repo, server_env
from tests.support.testenv import REPO_ROOT, TestEnv

pytestmark = pytest.mark.integration

SPAWN = str(REPO_ROOT / "scripts" / "spawn-pod.sh")
TAIL = str(REPO_ROOT / "scripts" / "tail-logs.sh")


def test_scripts_are_shellcheck_clean() -> None:
    shellcheck = Path(__import__("sys").executable).parent / "shellcheck"
    proc = subprocess.run([str(shellcheck), SPAWN, TAIL], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def run(script: str, env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([script, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_spawn_pod_positional_and_options_and_variables(
    testenv: TestEnv, namespace: str, tmp_path: Path
) -> None:
    install_chart(testenv, namespace)
    repo = make_repo(tmp_path / "repo")
    cluster = Cluster(testenv, namespace)
    env = server_env(testenv, namespace, repo)
    env.pop("AGENTIC_NAMESPACE")

    # positional <task-id> <branch-name> <repo-url> [context-dir], NAMESPACE from the environment
    positional = run(
        SPAWN, {**env, "NAMESPACE": namespace}, repo, "T002", FEATURE, ORIGIN, f"specs/{FEATURE}"
    )
    assert positional.returncode == 0, positional.stderr
    job = naming.job_name("T002", FEATURE)
    assert positional.stdout.startswith(f"T002: job {job} in {namespace} (dev)")
    annotations = cluster.get("job", job)["metadata"]["annotations"]
    assert annotations["agentic-sdlc.dev/description"] == "Implement the parser in src/parser.py"
    assert annotations["agentic-sdlc.dev/repo"] == ORIGIN

    # options, --namespace, --max-cost; a git Secret the release does not list is refused, nothing created
    options = [
        "--task-id", "T003", "--branch", FEATURE, "--repo", ORIGIN, "--description", "Print things",
        "--namespace", namespace, "--environment", "dev", "--max-cost", "0.75",
    ]
    refused = run(SPAWN, {**env, "SSH_SECRET_NAME": "old-secret"}, repo, *options)
    assert refused.returncode == 2
    assert refused.stderr == (
        "agentic-runner: invalid ssh_secret: the git Secret old-secret is not one environment 'dev' lists; "
        "allowed: none: this environment lists no git Secret a task may select (chart values git.secrets, "
        "with git.auth ssh).\n")
    assert {j["metadata"]["name"] for j in cluster.jobs()} == {job}
    spawned = run(SPAWN, env, repo, *options)
    assert spawned.returncode == 0, spawned.stderr
    assert {j["metadata"]["name"] for j in cluster.jobs()} == {job, naming.job_name("T003", FEATURE)}
    template = cluster.get("job", naming.job_name("T003", FEATURE))["spec"]["template"]
    context = json.loads(template["metadata"]["annotations"]["agentic-sdlc.dev/task-context"])
    assert (context["max_cost"], context["max_tokens"]) == (0.75, None)  # the budget, as the CLI's --max-cost

    # refusals keep the CLI's words and exit codes, and create nothing
    bad = run(SPAWN, {**env, "NAMESPACE": namespace}, repo, "T9;reboot", FEATURE, ORIGIN, f"specs/{FEATURE}")
    assert bad.returncode == 2 and bad.stderr.startswith("agentic-runner: invalid task_id:")
    creds = run(
        SPAWN,
        {**env, "NAMESPACE": namespace},
        repo,
        "T004",
        FEATURE,
        "https://u:pw@h/r.git",
        "--description",
        "x",
    )
    assert creds.returncode == 2 and "embedded credentials" in creds.stderr and "pw@" not in creds.stderr
    missing = run(SPAWN, env, repo, "T004")
    assert (
        missing.returncode == 2 and "<task-id>, <branch-name> and <repo-url> are required" in missing.stderr
    )
    assert len(cluster.jobs()) == 2


def test_spawn_pod_ssh_secret_selects_one_of_the_release_git_secrets(
    testenv: TestEnv, namespace: str, tmp_path: Path
) -> None:
    """--ssh-secret / SSH_SECRET_NAME: the Job's git-credentials volume is that Secret (the git
    containers' only); a name the release does not list creates nothing."""
    install_chart(testenv, namespace, {"git": {"auth": "ssh", "secrets": ["deploy-key-a"]},
                                       "externalSecrets": {"enabled": False}, "existingSecret": {"git": "team-git"}})
    repo = make_repo(tmp_path / "repo")
    cluster = Cluster(testenv, namespace)
    env = server_env(testenv, namespace, repo)

    def git_secret(task_id: str) -> str:
        pod = cluster.get("job", naming.job_name(task_id, FEATURE))["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "git-credentials"]
        return volume["secret"]["secretName"]

    by_option = run(SPAWN, env, repo, "T002", FEATURE, ORIGIN, f"specs/{FEATURE}", "--ssh-secret", "deploy-key-a")
    assert by_option.returncode == 0, by_option.stderr
    assert git_secret("T002") == "deploy-key-a"
    by_variable = run(SPAWN, {**env, "SSH_SECRET_NAME": "deploy-key-a"}, repo, "T003", FEATURE, ORIGIN,
                      f"specs/{FEATURE}")
    assert by_variable.returncode == 0, by_variable.stderr
    assert git_secret("T003") == "deploy-key-a"
    default = run(SPAWN, env, repo, "T004", FEATURE, ORIGIN, "--description", "x")
    assert default.returncode == 0, default.stderr
    assert git_secret("T004") == "team-git"
    other = run(SPAWN, env, repo, "T005", FEATURE, ORIGIN, "--description", "x", "--ssh-secret",
                "agentic-sdlc-agent-runner-llm")
    assert other.returncode == 2
    assert other.stderr == (
        "agentic-runner: invalid ssh_secret: the git Secret agentic-sdlc-agent-runner-llm is not one environment "
        "'dev' lists; allowed: one of team-git, deploy-key-a.\n")
    assert len(cluster.jobs()) == 3


def test_tail_logs(testenv: TestEnv, namespace: str, tmp_path: Path) -> None:
    install_chart(testenv, namespace)
    repo = make_repo(tmp_path / "repo")
    cluster = Cluster(testenv, namespace)
    env = server_env(testenv, namespace, repo)
    env.pop("AGENTIC_NAMESPACE")
    spawned = run(SPAWN, {**env, "NAMESPACE": namespace}, repo, "T002", FEATURE, ORIGIN, f"specs/{FEATURE}")
    assert spawned.returncode == 0, spawned.stderr
    pod = cluster.pod_of(naming.job_name("T002", FEATURE))
    cluster.log(pod, "hello from T002")
    once = run(TAIL, {**env, "ENVIRONMENT": "dev"}, repo, "--namespace", namespace, "--no-follow")
    assert (once.returncode, once.stdout) == (0, "[T002] hello from T002\n")
    cluster.finish(pod, 0, json.dumps({"task_id": "T002", "status": "succeeded"}))
    followed = run(TAIL, {**env, "NAMESPACE": namespace}, repo, "T002")
    assert (followed.returncode, followed.stdout) == (0, "[T002] hello from T002\n")
