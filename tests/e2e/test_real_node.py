"""The whole path on a real node, through the real MCP server over stdio.

The chart is installed into a namespace labelled Pod Security `restricted` (enforce), with the agent
image built by `make image` and imported into the real node's containerd, and the node's selector,
toleration and RuntimeClass. `spawn_task_pod` makes the Job, the scheduler puts its pod on the real
node, the kubelet runs the image: it clones from a git daemon on the host, runs OpenCode against the
scripted model on the host (both bound to the node's gateway address), commits and pushes. Its log
comes back through the kubelet and the API server to `stream_task_logs`, its result as the
termination message. The tests name the `agent` container where it matters, so they hold for a pod
of several containers too."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mcp_server import naming
from tests.conftest import wait_until
from tests.e2e.conftest import IMAGE_REPOSITORY, IMAGE_TAG
from tests.support import evil_agent
from tests.support.git_remotes import BASE_BRANCH, git, http_git
from tests.support.mcp_client import connect
from tests.support.real_node import RESTRICTED, LogRecorder, deploy
from tests.support.runner_harness import SCRIPTED_API_KEY
from tests.support.scripted_model import (
    MODEL_ID,
    PROVIDER_ID,
    Script,
    Turn,
    bash,
    conversation_text,
    edit,
    read,
    write,
)
from tests.support.testenv import TestEnv

pytestmark = [pytest.mark.e2e, pytest.mark.real_node]

FINAL = "Changed the greeting in README.md to 'hello node'."


@pytest.fixture(scope="session")
def node_image(testenv: TestEnv, agent_image: str) -> tuple[str, str]:
    """The agent image in the real node's containerd (imported once per image id)."""
    testenv.import_image(agent_image)
    return IMAGE_REPOSITORY, IMAGE_TAG


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def by_task(table: dict[str, Script]):
    def select(body: dict[str, Any]) -> Script:
        text = conversation_text(body)
        for task_id, script in table.items():
            if f"## Task {task_id}" in text or f"task {task_id}" in text.lower():
                return script
        raise AssertionError("a request for no known task")

    return select


def agent_of(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == naming.AGENT_CONTAINER)


def agent_status(pod: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in pod["status"]["containerStatuses"] if s["name"] == naming.AGENT_CONTAINER)


# -- 1 + 6: one task, live logs, its result; restricted admission and a read-only root ----------


async def test_a_task_runs_on_the_real_node_with_live_logs_and_its_result(
    testenv: TestEnv, namespace: str, node_image: tuple[str, str], stack: ExitStack, tmp_path: Path
) -> None:
    seen_early_lines = threading.Event()
    script = [
        Turn(text="Reading README.md first.", tool_calls=(read("README.md"),)),
        # Held until the test has received the lines so far through stream_task_logs: delivered live.
        Turn(tool_calls=(bash("touch /opt/agentic-runner/planted; touch /etc/planted; echo exit=$?",
                              "try to write outside the emptyDirs"),), gate=seen_early_lines),
        Turn(tool_calls=(edit("README.md", "hello world", "hello node"),)),
        Turn(text=FINAL),
    ]
    world = deploy(stack, testenv, namespace, node_image, tmp_path, script)
    async with connect(world.env()) as mcp:
        handle = (await mcp.call("spawn_task_pod", {
            "task_id": "T001", "description": "Change the greeting in README.md to 'hello node'"})).ok
        recorder = LogRecorder(mcp, ["T001"])

        async def release_when_seen(rec: LogRecorder) -> None:
            texts = rec.texts()
            if not seen_early_lines.is_set() and any('"tool":"read"' in t for t in texts):
                assert rec.phases["T001"] == "running"
                pod = world.cluster.pods(handle["job"])[0]
                assert pod["status"]["phase"] == "Running"
                seen_early_lines.set()

        await recorder.run(each=release_when_seen)
        status = (await mcp.call("get_task_status", {"task_id": "T001"})).ok
        agents = (await mcp.call("list_agents", {})).ok

    assert seen_early_lines.is_set()
    # The whole log, in order, none lost or repeated: exactly the agent container's log as the API
    # server serves it.
    (pod,) = world.cluster.pods(handle["job"])
    served = testenv.kubectl("logs", "-n", namespace, pod["metadata"]["name"], "-c", naming.AGENT_CONTAINER).stdout
    assert recorder.texts() == served.splitlines()
    assert [r.line["stream"] for r in recorder.received] == [pod["metadata"]["name"]] * len(recorder.received)
    # git-clone cloned before the agent started; the runner adopts its checkout and pushes through git-push
    assert recorder.runner_phases("T001") == ["setup", "clone", "branch", "push", "agent", "commit", "push", "done"]
    assert any(t.startswith('{"type":"tool_use"') for t in recorder.texts()), "OpenCode's own events"
    assert SCRIPTED_API_KEY not in served

    # The result, from the termination message.
    head = world.remote.sha("agentic/001-feature/T001")
    expected = {"task_id": "T001", "status": "succeeded", "branch": "agentic/001-feature/T001", "base": BASE_BRANCH,
                "commits": 1, "head_sha": head, "pushed": True, "files_changed": ["README.md"],
                "summary": FINAL, "error": None,
                # four turns of the scripted default (10 prompt, 5 completion tokens), three tool calls, no prices
                "usage": {"model": f"{PROVIDER_ID}/{MODEL_ID}", "steps": 4, "tool_calls": 3, "input_tokens": 40,
                          "output_tokens": 20, "reasoning_tokens": 0, "cache_read_tokens": 0,
                          "cache_write_tokens": 0, "cost": 0.0}}
    assert json.loads(agent_status(pod)["state"]["terminated"]["message"]) == expected
    assert recorder.texts()[-1] == "AGENTIC_RESULT: " + json.dumps(expected, separators=(",", ":"))
    assert (status["phase"], status["node"], status["exit_code"], status["result"]) == (
        "succeeded", testenv.node.name, 0, expected)
    assert [(a["task_id"], a["phase"], a["node"]) for a in agents["agents"]] == [("T001", "succeeded", "real-node")]
    assert world.remote.show("agentic/001-feature/T001", "README.md") == "hello node\n"

    # The pod's four containers: the git ones and the proxy ran and ended with the task, the key the
    # provider got was added by the proxy (the agent has none), and no container's log shows it.
    def sidecars_ended() -> dict[str, Any] | None:
        (now,) = world.cluster.pods(handle["job"])
        states = {c["name"]: c["state"] for c in now["status"]["initContainerStatuses"]}
        return states if all("terminated" in state for state in states.values()) else None

    init = wait_until(sidecars_ended, timeout=60, message="the pod's sidecars to end after the agent")
    assert {name: state["terminated"]["exitCode"] for name, state in init.items()} == {
        "git-clone": 0, "git-push": 0, "llm-proxy": 0}, init
    assert set(world.model.recorded.authorizations) == {f"Bearer {SCRIPTED_API_KEY}"}
    everything = testenv.kubectl("logs", "-n", namespace, pod["metadata"]["name"], "--all-containers").stdout
    assert "serving pushes of agentic/001-feature/T001" in everything and "starting nginx" in everything
    assert SCRIPTED_API_KEY not in everything

    # Admitted by Pod Security "restricted", and the root filesystem is read-only for the agent.
    labels = world.cluster.get("namespace", namespace, selector="")["metadata"]["labels"]
    assert {k: labels[k] for k in RESTRICTED} == RESTRICTED
    assert pod["spec"]["nodeName"] == testenv.node.name and pod["spec"]["runtimeClassName"] == "runc"
    assert agent_of(pod)["securityContext"]["readOnlyRootFilesystem"] is True
    tool_output = next(t for t in recorder.texts() if "/etc/planted" in t and '"tool":"bash"' in t)
    assert "touch: cannot touch '/opt/agentic-runner/planted': Read-only file system" in tool_output
    assert "touch: cannot touch '/etc/planted': Read-only file system" in tool_output
    assert "exit=1" in tool_output


# -- 2: three [ASYNC] tasks of one feature, in parallel on the node ------------------------------

TASKS_MD = """\
# Tasks: 001 feature

## Phase 1
- [ ] T002 [P] [ASYNC] Write the parser notes in docs/parser.md
- [ ] T003 [P] [ASYNC] Write the printer notes in docs/printer.md
- [ ] T004 [P] [ASYNC] Write the main notes in docs/main.md
"""


async def test_three_async_tasks_of_a_feature_run_in_parallel_on_the_node(
    testenv: TestEnv, namespace: str, node_image: tuple[str, str], stack: ExitStack, tmp_path: Path
) -> None:
    together = threading.Event()
    ids = ("T002", "T003", "T004")
    files = {"T002": "docs/parser.md", "T003": "docs/printer.md", "T004": "docs/main.md"}
    table = {i: [Turn(text=f"Working on {i}.", tool_calls=(write(files[i], f"notes of {i}\n"),), gate=together),
                 Turn(text=f"{i} done.")] for i in ids}
    world = deploy(stack, testenv, namespace, node_image, tmp_path, by_task(table))
    (world.repo / "specs/001-feature/tasks.md").write_text(TASKS_MD)
    async with connect(world.env()) as mcp:
        spawned = (await mcp.call("spawn_async_tasks", {"tasks_file": "specs/001-feature/tasks.md"})).ok
        assert [(h["task_id"], h["created"]) for h in spawned["handles"]] == [(i, True) for i in ids]
        # All three agents wait for the model at once: they run in parallel.
        world.model.recorded.wait_for(3, timeout=240)
        running = (await mcp.call("list_agents", {})).ok
        together.set()
        recorder = LogRecorder(mcp, list(ids))
        await recorder.run()
        done = (await mcp.call("list_agents", {})).ok

    assert sorted((a["task_id"], a["phase"], a["node"]) for a in running["agents"]) == [
        (i, "running", "real-node") for i in ids]
    assert sorted((a["task_id"], a["phase"], a["result_summary"]) for a in done["agents"]) == [
        (i, "succeeded", f"{i} done.") for i in ids]
    for i in ids:
        assert world.remote.show(f"agentic/001-feature/{i}", files[i]) == f"notes of {i}\n"
        assert recorder.runner_phases(i)[-1] == "done"
    assert sorted(world.remote.branches()) == sorted(["main", BASE_BRANCH, *[f"agentic/001-feature/{i}" for i in ids]])


# -- 3: the Job's deadline passes ----------------------------------------------------------------


async def test_a_task_past_its_deadline_gets_sigterm_pushes_its_work_and_times_out(
    testenv: TestEnv, namespace: str, node_image: tuple[str, str], stack: ExitStack, tmp_path: Path
) -> None:
    script = [Turn(tool_calls=(edit("README.md", "hello world", "hello deadline"),)), Turn(hold=True)]
    world = deploy(stack, testenv, namespace, node_image, tmp_path, script, {"task": {"timeoutSeconds": 60}})
    # A slow remote: the push of the work so far outlasts the arrival of the kubelet's SIGTERM.
    world.remote.install_hook("pre-receive", "#!/bin/sh\ncat >/dev/null\nsleep 4\n")
    async with connect(world.env()) as mcp:
        handle = (await mcp.call("spawn_task_pod", {"task_id": "T001", "description": "Say hello deadline"})).ok
        recorder = LogRecorder(mcp, ["T001"])
        await recorder.run(until=lambda rec: rec.phases.get("T001") == "timed_out"
                           and any(t.startswith("AGENTIC_RESULT: ") for t in rec.texts()), timeout=240)
        status = (await mcp.call("get_task_status", {"task_id": "T001"})).ok

    # The Job controller marks the Job FailureTarget at the deadline and Failed only once the pod has
    # terminated, which may come after the server has seen the runner's result.
    assert world.cluster.wait_job_condition(handle["job"], timeout=120) == "Failed"
    job = world.cluster.get("job", handle["job"])
    assert [(c["type"], c["reason"]) for c in job["status"]["conditions"] if c["type"] == "Failed"] == [
        ("Failed", "DeadlineExceeded")]
    assert (status["phase"], status["reason"]) == ("timed_out", "DeadlineExceeded")
    texts = recorder.texts()
    assert any("SIGTERM received" in t for t in texts), "the kubelet's SIGTERM reached the runner"
    result = json.loads(next(t for t in texts if t.startswith("AGENTIC_RESULT: "))[len("AGENTIC_RESULT: "):])
    assert (result["status"], result["pushed"], result["commits"]) == ("timed_out", True, 1)
    head = world.remote.sha("agentic/001-feature/T001")
    assert result["head_sha"] == head
    assert world.remote.log("agentic/001-feature/T001")[0].startswith("WIP T001: ")
    assert world.remote.show("agentic/001-feature/T001", "README.md") == "hello deadline\n"


# -- 4: over the memory limit --------------------------------------------------------------------

HOG = ("/opt/agentic-runner/bin/python -c 'import time\nchunks = []\nwhile True:\n"
       "    chunks.append(bytearray(64 << 20)); time.sleep(0.05)'; echo hog exited $?")


async def test_a_task_over_its_memory_limit_is_reported_oom_killed(
    testenv: TestEnv, namespace: str, node_image: tuple[str, str], stack: ExitStack, tmp_path: Path
) -> None:
    script = [Turn(tool_calls=(edit("README.md", "hello world", "hello memory"),)),
              Turn(tool_calls=(bash(HOG, "load everything into memory"),)),
              Turn(text="The command ran out of memory.")]
    values = {"resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "768Mi"}}}
    world = deploy(stack, testenv, namespace, node_image, tmp_path, script, values)
    async with connect(world.env()) as mcp:
        await mcp.call("spawn_task_pod", {"task_id": "T001", "description": "Say hello memory"})
        recorder = LogRecorder(mcp, ["T001"])
        await recorder.run()
        status = (await mcp.call("get_task_status", {"task_id": "T001"})).ok
        agents = (await mcp.call("list_agents", {})).ok

    assert (status["phase"], status["reason"]) == ("failed", "OOMKilled")
    assert status["result"]["status"] == "failed"
    assert status["result"]["error"].startswith("out of memory: ")
    assert "OOM-killed" in status["result"]["error"] and "768 MiB" in status["result"]["error"]
    assert status["result"]["pushed"] is True  # the work so far, as WIP
    assert world.remote.log("agentic/001-feature/T001")[0].startswith("WIP T001: ")
    (row,) = agents["agents"]
    assert (row["phase"], row["reason"]) == ("failed", "OOMKilled")
    assert row["result_summary"].startswith("out of memory: ")


# -- 5: cancel_task on a running task ------------------------------------------------------------


async def test_cancel_gives_the_pod_its_grace_period_and_returns_the_pushed_result(
    testenv: TestEnv, namespace: str, node_image: tuple[str, str], stack: ExitStack, tmp_path: Path
) -> None:
    script = [Turn(tool_calls=(edit("README.md", "hello world", "hello cancel"),)), Turn(hold=True)]
    world = deploy(stack, testenv, namespace, node_image, tmp_path, script)
    async with connect(world.env()) as mcp:
        handle = (await mcp.call("spawn_task_pod", {"task_id": "T001", "description": "Say hello cancel"})).ok
        await asyncio.to_thread(world.model.recorded.wait_for, 2, 240)  # the agent is at the held turn
        cancelled = (await mcp.call("cancel_task", {"task_id": "T001"}, timeout=90)).ok
        after = (await mcp.call("list_agents", {})).ok

    head = world.remote.sha("agentic/001-feature/T001")
    result = cancelled["result"]
    assert result is not None, cancelled["message"]
    assert (result["status"], result["pushed"], result["commits"], result["head_sha"]) == ("cancelled", True, 1, head)
    assert result["error"].startswith("stopped: SIGTERM received")
    pod_name = cancelled["deleted_pods"][0]
    assert cancelled["deleted_jobs"] == [handle["job"]]
    assert cancelled["message"] == (
        f"cancelled task T001: deleted Job {handle['job']} and pod {pod_name}. The agent reported cancelled: "
        f"1 commit(s), pushed agentic/001-feature/T001 at {head[:12]}.")
    assert world.remote.log("agentic/001-feature/T001")[0].startswith("WIP T001: ")
    assert world.remote.show("agentic/001-feature/T001", "README.md") == "hello cancel\n"
    wait_until(lambda: not world.cluster.pods(handle["job"]), timeout=60, message="the pod to be gone")
    assert all(a["task_id"] != "T001" or a["phase"] == "cancelled" for a in after["agents"])
    git("--git-dir", str(world.remote.path), "fsck", "--no-progress")


# -- issue 10: the evil agent in the whole pod, on the real node ---------------------------------

GIT_TOKEN = "glpat-node-evil-test-token-7d3e1a9c5b"


class RecordingServer:
    """An attacker's git server on `host`: answers every request 401 (asking for basic auth) and
    records the Authorization header each request carried."""

    def __init__(self, host: str) -> None:
        self.authorizations: list[str | None] = []
        seen = self.authorizations

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                seen.append(self.headers.get("Authorization"))
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET  # noqa: N815

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> RecordingServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
TASK_BRANCH = "agentic/001-feature/T666"


async def test_the_evil_agent_in_the_whole_pod_gets_no_credential_and_pushes_only_the_honest_work(
    testenv: TestEnv, namespace: str, node_image: tuple[str, str], stack: ExitStack, tmp_path: Path
) -> None:
    """The pod as the chart shapes it (git-clone, git-push, llm-proxy, agent) on the real kubelet, the
    git token in a Secret the git containers mount, the LLM key in one the proxy mounts, a remote
    that wants the token. The evil agent (tests/support/evil_agent.py) loots /proc, the environment
    and every file it can reach, plants hooks and insteadOf, pushes to main, force-pushes, asks the
    pusher for another ref and pushes a workflow. Every attack fails, the task branch gets the honest
    work, and neither credential is in the loot (pushed with the work), the pushed refs or any
    container's log."""
    gateway = testenv.node.gateway
    holder: dict[str, Any] = {}

    def select(body: dict[str, Any]) -> Script:
        return holder["script"]

    testenv.kubectl("create", "secret", "generic", "git", "-n", namespace, "--from-literal=username=agent",
                    f"--from-literal=token={GIT_TOKEN}")
    world = deploy(stack, testenv, namespace, node_image, tmp_path, select, values={
        "git": {"auth": "token", "hosts": [{"host": gateway, "insecure": True}]},
        "existingSecret": {"git": "git", "llm": "llm"},
    })
    prefix = stack.enter_context(http_git(world.remote.path.parent, "agent", GIT_TOKEN, host=gateway))
    url = f"{prefix}/{world.remote.path.name}"
    evil = stack.enter_context(RecordingServer(gateway))  # where a planted insteadOf points
    evil_url = f"http://{gateway}:{evil.port}/evil.git"
    holder["script"] = evil_agent.script(evil_agent.Targets(
        repo_url=url, task_branch=TASK_BRANCH, queue="/run/agentic/push",
        credential_files=["/etc/agentic-sdlc/git/token", "/etc/agentic-sdlc/git/username",
                          "/etc/agentic-sdlc/llm/SCRIPTED_API_KEY", "/proc/1/environ",
                          "/var/run/secrets/kubernetes.io/serviceaccount/token"],
        search_roots=("/tmp", "/run", "/etc", "/var/run", "/home/agent", "/workspace", "/proc/self"),
        evil_url=evil_url, marker_dir="/run/agentic/push"))
    base, main = world.remote.sha(BASE_BRANCH), world.remote.sha("main")

    async with connect(world.env()) as mcp:
        handle = (await mcp.call("spawn_task_pod", {"task_id": "T666", "repo": url,
                                                   "description": "Change the greeting in README.md"})).ok
        recorder = LogRecorder(mcp, ["T666"])
        await recorder.run(timeout=600)
        status = (await mcp.call("get_task_status", {"task_id": "T666"})).ok

    (pod,) = world.cluster.pods(handle["job"])
    events = [json.loads(t) for t in recorder.texts() if t.startswith('{"type":"tool_use"')]
    outputs = [e["part"]["state"].get("output", "") for e in events if e["part"].get("tool") == "bash"]
    attacks = evil_agent.attack_lines(outputs)
    print("\n".join(attacks))
    names = [line.split(":", 1)[0] for line in attacks]
    for name in ("ATTACK loot", "ATTACK plant", "ATTACK push-main", "ATTACK push-direct", "ATTACK queue-101",
                 "ATTACK queue-102", "ATTACK queue-103"):
        assert name in names, (status, recorder.texts()[-40:])  # every attack was tried

    # the honest work is on the task branch; main and the feature branch did not move
    assert status["result"]["status"] == "succeeded" and status["result"]["pushed"] is True, status
    assert world.remote.show(TASK_BRANCH, "README.md") == evil_agent.HONEST_TEXT
    assert world.remote.sha(TASK_BRANCH) == status["result"]["head_sha"]
    assert world.remote.sha("main") == main and world.remote.sha(BASE_BRANCH) == base
    assert sorted(world.remote.branches()) == sorted([BASE_BRANCH, "main", TASK_BRANCH, f"{TASK_BRANCH}-wip-102"])
    # the agent's own pushes failed (no credential: the remote and the insteadOf target both want one);
    # the pusher pushed its request 101 to the task branch only, kept the force-push aside, refused
    # the workflow
    push_exits = [line for line in attacks if line.startswith(("ATTACK push-main", "ATTACK push-direct"))]
    assert len(push_exits) == 2 and all(not line.endswith("exit 0") for line in push_exits), attacks
    answers = {n: json.loads(line.split(": ", 1)[1]) for n in (101, 102, 103)
               for line in attacks if line.startswith(f"ATTACK queue-{n}: ")}
    assert answers[101]["pushed"] is True and answers[101]["ref"] == f"refs/heads/{TASK_BRANCH}"
    assert answers[102]["pushed"] is False and answers[102]["fallback_ref"] == f"refs/heads/{TASK_BRANCH}-wip-102"
    assert answers[103]["pushed"] is False and answers[103]["refused"] == [".github/workflows/evil.yml"]
    # the insteadOf target: only the agent's own anonymous tries, never a credential, never the git side
    assert evil.authorizations == [None] * len(evil.authorizations)

    # neither credential anywhere: the loot the agent pushed, every pushed ref, every container's log
    loot = world.remote.show(TASK_BRANCH, "loot.txt")
    assert "== env" in loot and "-- /proc/" in loot and "-- /etc/agentic-sdlc/git/token" in loot
    assert "No such file or directory" in loot  # the git and LLM Secrets are not in the agent's container
    everything = testenv.kubectl("logs", "-n", namespace, pod["metadata"]["name"], "--all-containers").stdout
    pushed = git("--git-dir", str(world.remote.path), "log", "-p", "--all", "--format=%H %s")
    for secret in (GIT_TOKEN, SCRIPTED_API_KEY):
        assert secret not in loot and secret not in everything and secret not in pushed
    # the provider still got its key: from the proxy
    assert set(world.model.recorded.authorizations) == {f"Bearer {SCRIPTED_API_KEY}"}
