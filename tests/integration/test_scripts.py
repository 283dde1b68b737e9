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

    # options, --namespace, --ssh-secret accepted and reported
    options = run(
        SPAWN,
        {**env, "SSH_SECRET_NAME": "old-secret"},
        repo,
        "--task-id",
        "T003",
        "--branch",
        FEATURE,
        "--repo",
        ORIGIN,
        "--description",
        "Print things",
        "--namespace",
        namespace,
        "--environment",
        "dev",
        "--max-cost",
        "0.75",
    )
    assert options.returncode == 0, options.stderr
    assert "--ssh-secret/SSH_SECRET_NAME (old-secret) is not used per task" in options.stderr
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
