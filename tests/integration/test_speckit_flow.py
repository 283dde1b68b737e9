"""spec-kit's implement flow with the fork's own scripts as the oracle, over real MCP stdio against the
real control plane with the chart installed: `init`, `add-task` and `dispatch-async` as the fork runs
them, then the project's tools. The agents are played by the test: it pushes each task branch to a
real git remote and finishes the pod (kwok) with the runner's result, as the agent image would.

The fork's `check-status` / `summary` answers are printed step by step (`pytest -s`) and written to
$AGENTIC_SPECKIT_TRANSCRIPT if set."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mcp_server import naming
from tests.support.git_remotes import BareRemote, git, served_url
from tests.support.mcp_client import connect
from tests.support.runner_env import Cluster, install_chart, server_env
from tests.support.speckit_fork import Fork, make_feature
from tests.support.testenv import TestEnv

pytestmark = pytest.mark.integration

FEATURE = "001-greeter"
TASKS_FILE = f"specs/{FEATURE}/tasks.md"
IDENTITY = {
    "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com",
}


def make_project(root: Path) -> tuple[Path, BareRemote]:
    """A spec-kit project on its feature branch, pushed to a bare remote that is its origin."""
    bare = root / "origin.git"
    git("init", "-q", "--bare", str(bare))
    repo = root / "repo"
    repo.mkdir()
    git("init", "-q", "-b", FEATURE, cwd=repo)
    (repo / "README.md").write_text("# greeter\n")
    (repo / "src").mkdir()
    (repo / "src" / "main.py").write_text("print('hi')\n")
    make_feature(repo, FEATURE)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=dev", "-c", "user.email=dev@example.com", "commit", "-q", "-m", "feature: spec, plan, tasks",
        cwd=repo)
    git("remote", "add", "origin", served_url(bare), cwd=repo)
    git("push", "-q", "origin", FEATURE, cwd=repo)
    return repo, BareRemote(bare)


def agent_push(root: Path, remote: BareRemote, task_id: str, path: str, content: str) -> str:
    """What a task's agent and runner do: a commit on the task branch from the feature branch, pushed."""
    work = root / f"agent-{task_id}"
    git("clone", "-q", "-b", FEATURE, remote.url, str(work))
    git("switch", "-q", "-c", f"agentic/{FEATURE}/{task_id}", cwd=work)
    (work / path).parent.mkdir(parents=True, exist_ok=True)
    (work / path).write_text(content)
    git("add", "-A", cwd=work)
    git("-c", "user.name=agent", "-c", "user.email=agent@example.com", "commit", "-q", "-m", f"{task_id}: work",
        cwd=work)
    git("push", "-q", "origin", f"HEAD:refs/heads/agentic/{FEATURE}/{task_id}", cwd=work)
    return git("rev-parse", "HEAD", cwd=work).strip()


def result(task_id: str, status: str, head: str | None, **extra: Any) -> str:
    doc = {
        "task_id": task_id, "status": status, "branch": f"agentic/{FEATURE}/{task_id}", "base": FEATURE,
        "commits": 1 if head else 0, "head_sha": head, "pushed": bool(head), "files_changed": [],
        "summary": f"{task_id}: done" if status == "succeeded" else "", "error": None, **extra,
    }
    return json.dumps(doc, separators=(",", ":"))


class Oracle:
    """The fork's answers, recorded step by step."""

    def __init__(self, fork: Fork) -> None:
        self.fork = fork
        self.lines: list[str] = []

    def step(self, title: str, *task_ids: str) -> tuple[dict[str, str], dict[str, Any]]:
        statuses = self.fork.statuses(*task_ids)
        summary = self.fork.summary()
        self.lines.append(f"## {title}")
        self.lines += [f"$ tasks-meta-utils.sh check-status {t} specs/{FEATURE}\n{s}" for t, s in statuses.items()]
        self.lines.append(f"$ tasks-meta-utils.sh summary specs/{FEATURE}/tasks_meta.json\n{json.dumps(summary)}")
        return statuses, summary


async def test_the_forks_implement_flow_sees_the_agents_finish(
    testenv: TestEnv, namespace: str, tmp_path: Path
) -> None:
    install_chart(testenv, namespace)
    repo, remote = make_project(tmp_path)
    fork = Fork.install(repo, repo / "specs" / FEATURE)
    cluster = Cluster(testenv, namespace)
    oracle = Oracle(fork)

    # The fork's side, as /spec.tasks and /implement step 8 run it.
    fork.init()
    fork.add_task("T001", "Create the greeting module in src/greet.py", "ASYNC")
    fork.add_task("T002", "Create the farewell module in src/farewell.py", "ASYNC")
    fork.add_task("T004", "Add a name parameter to src/greet.py", "ASYNC")
    fork.dispatch_async("T001", "Create the greeting module in src/greet.py", "Greet people.")
    prompt = (repo / "specs" / FEATURE / ".async_state" / "delegation_prompts" / "T001.md").read_text()
    assert "**Task ID:** T001" in prompt  # the fork's delegation template
    statuses, summary = oracle.step("dispatched, nothing spawned yet", "T001", "T002", "T004")
    assert statuses == {"T001": "running", "T002": "no_job", "T004": "no_job"}
    assert (summary["pending"], summary["all_done"]) == (3, False)

    async with connect(server_env(testenv, namespace, repo, **IDENTITY)) as mcp:
        plan = (await mcp.call("spawn_async_tasks", {"tasks_file": TASKS_FILE})).ok
        assert [(p["task_id"], p["phase"], p["action"]) for p in plan["plan"]] == [
            ("T001", "Phase 1", "spawn"),
            ("T002", "Phase 1", "spawn"),
            ("T004", "Phase 2", "wait"),
        ]
        assert plan["plan"][2]["reason"] == "Phase 1 is not finished (T001, T002, T003); it depends on T001"
        assert plan["warnings"] == [
            "line 28: a checkbox that is not a task (no task id such as T012 after the box): skipped"
        ]
        jobs = {h["task_id"]: h["job"] for h in plan["handles"]}
        assert sorted(jobs) == ["T001", "T002"]  # nothing from the comment, the fence or the stray line

        # The dispatch-async prompt is the agent's prompt, and the design documents go along.
        job = cluster.get("job", jobs["T001"])
        context = json.loads(job["spec"]["template"]["metadata"]["annotations"][naming.ANNOTATION_TASK_CONTEXT])
        assert context["description"] == prompt.strip()
        assert [f["path"] for f in context["context_files"]] == [
            f"specs/{FEATURE}/spec.md", f"specs/{FEATURE}/plan.md", f"specs/{FEATURE}/tasks.md"
        ]
        assert job["metadata"]["annotations"][naming.ANNOTATION_DESCRIPTION] == (
            "Create the greeting module in src/greet.py"
        )
        assert job["metadata"]["annotations"][naming.ANNOTATION_FEATURE_DIR] == f"specs/{FEATURE}"

        statuses, summary = oracle.step("spawned T001, T002 (T004 waits for phase 1)", "T001", "T002", "T004")
        assert statuses == {"T001": "running", "T002": "running", "T004": "no_job"}
        assert summary == {
            "total_tasks": 5, "pending": 3, "in_progress": 2, "completed": 0, "failed": 0,
            "sync_tasks": 2, "async_tasks": 3, "all_done": False,
        }

        # The agents: T001 pushes its work and succeeds, T002 fails.
        head = agent_push(tmp_path, remote, "T001", "src/greet.py", "def greet():\n    return 'hello'\n")
        cluster.finish(cluster.pod_of(jobs["T001"]), 0, result("T001", "succeeded", head))
        cluster.finish(cluster.pod_of(jobs["T002"]), 1, result("T002", "failed", None, error="tests fail"))
        for task in ("T001", "T002"):
            cluster.wait_job_condition(jobs[task])

        # ONE observing call, and the fork sees both ends.
        listed = (await mcp.call("list_agents", {})).ok
        assert {a["task_id"]: a["phase"] for a in listed["agents"]} == {"T001": "succeeded", "T002": "failed"}
        statuses, summary = oracle.step("after one list_agents", "T001", "T002", "T004")
        assert statuses == {"T001": "completed", "T002": "failed", "T004": "no_job"}
        assert (summary["completed"], summary["failed"], summary["in_progress"]) == (1, 1, 0)
        assert summary["all_done"] is False
        meta = json.loads(fork.meta.read_text())["tasks"]
        assert meta["T001"]["result_summary"] == "T001: done"
        assert meta["T001"]["agentic_runner"]["head_sha"] == head
        assert meta["T002"]["failure_reason"] == "tests fail"
        completed = (repo / "specs" / FEATURE / ".async_state" / "delegation_completed" / "T001.txt").read_text()
        assert f"head_sha: {head}" in completed and f"branch: agentic/{FEATURE}/T001" in completed

        # Phase 2 still waits: T002 failed and the [SYNC] T003 is not done.
        again = (await mcp.call("spawn_async_tasks", {"tasks_file": TASKS_FILE})).ok
        waiting = next(p for p in again["plan"] if p["task_id"] == "T004")
        assert (waiting["action"], waiting["waits_for"]) == ("wait", ["T002", "T003"])
        assert [j["metadata"]["name"] for j in cluster.jobs() if "t004" in j["metadata"]["name"]] == []

        # Merge-back of what succeeded, on the real remote.
        dry = (await mcp.call("merge_task_branches", {"dry_run": True})).ok
        assert [(e["task_id"], e["action"]) for e in dry["entries"]] == [("T001", "merge"), ("T002", "skip")]
        before = remote.sha(FEATURE)
        merged = (await mcp.call("merge_task_branches", {})).ok
        assert [(e["task_id"], e["action"]) for e in merged["entries"]] == [("T001", "merged"), ("T002", "skip")]
        assert merged["pushed"] is True and merged["conflict"] is None
        assert merged["sync_ready"] == ["T003"]
        assert remote.log(FEATURE, "%s|%P")[0] == (
            f"Merge T001 (agentic/{FEATURE}/T001) into {FEATURE}|{before} {head}"
        )
        assert remote.show(FEATURE, "src/greet.py") == "def greet():\n    return 'hello'\n"
        assert git("status", "--porcelain", "--untracked-files=no", cwd=repo).strip() == ""

        # The main session does T003 and T002 by hand; phase 2 may start.
        fork.run("complete-task", str(fork.meta), "T003", "layout reviewed")
        tasks_md = repo / "specs" / FEATURE / "tasks.md"
        text = tasks_md.read_text()
        tasks_md.write_text(text.replace("- [ ] T002", "- [X] T002").replace("- [ ] T003", "- [X] T003"))
        third = (await mcp.call("spawn_async_tasks", {})).ok  # the feature found from the branch
        assert [(p["task_id"], p["action"]) for p in third["plan"]] == [("T001", "exists"), ("T004", "spawn")]
        statuses, _summary = oracle.step("phase 2 started (T004)", "T004")
        assert statuses == {"T004": "running"}

    transcript = "\n".join(oracle.lines)
    print(transcript)
    if os.environ.get("AGENTIC_SPECKIT_TRANSCRIPT"):
        Path(os.environ["AGENTIC_SPECKIT_TRANSCRIPT"]).write_text(transcript + "\n")


def test_speckit_sync_rebuilds_the_files_from_the_cluster(testenv: TestEnv, namespace: str, tmp_path: Path) -> None:
    """The files are a projection: delete them, `agentic-runner speckit sync` writes them again."""
    install_chart(testenv, namespace)
    repo, _remote = make_project(tmp_path)
    fork = Fork.install(repo, repo / "specs" / FEATURE)
    env = server_env(testenv, namespace, repo)
    cli = [str(Path(env["PATH"].split(":")[0]) / "agentic-runner")]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=120)

    spawned = run("spawn-async", "-o", "json")
    assert spawned.returncode == 0, spawned.stderr
    jobs = {h["task_id"]: h["job"] for h in json.loads(spawned.stdout)["handles"]}
    cluster = Cluster(testenv, namespace)
    cluster.finish(cluster.pod_of(jobs["T001"]), 0, result("T001", "succeeded", None, pushed=False))
    cluster.wait_job_condition(jobs["T001"])
    for path in (repo / "specs" / FEATURE).glob("tasks_meta.json*"):
        path.unlink()
    subprocess.run(["rm", "-rf", str(repo / "specs" / FEATURE / ".async_state")], check=True)

    synced = run("speckit", "sync")
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.startswith(f"2 task(s) of specs/{FEATURE} in environment 'dev'; 2 brought up to date")
    assert fork.statuses("T001", "T002") == {"T001": "completed", "T002": "running"}
    assert fork.summary()["total_tasks"] == 5
    assert run("speckit", "sync").stdout.startswith(f"2 task(s) of specs/{FEATURE} in environment 'dev'; 0 brought")
