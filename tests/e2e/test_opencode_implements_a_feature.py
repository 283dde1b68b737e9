"""One spec-kit feature end to end, driven by the REAL OpenCode as a user runs it.

The project is set up the way the README tells a user to: the fork's scripts under `.specify/`,
`agentic-runner speckit install` (the extension's commands as OpenCode commands, its hooks in
`.specify/extensions.yml`), this repository's `opencode.json` and `.opencode/` copied in. Then
`opencode run --command speckit.agentic-runner.delegate` (what the implement flow's
`before_implement` hook runs) and `--command speckit.agentic-runner.follow`. The scripted model
plays the main session and does what the command's text tells it to: the fork's `init`,
`dispatch-async`, `check-status`, `summary` through OpenCode's bash tool, and the MCP tools
(`agentic-runner_<tool>`), which OpenCode calls on the real `agentic-runner-mcp` it starts over
stdio, against the test control plane with the chart installed. The agents are played by the test
(a push to the real remote and the pod finished by annotation, as the agent image would).

The test asserts from the outside (the fork's `check-status` / `summary`, tasks_meta.json, the
Jobs) and on what the model received from OpenCode (the command's text, the tools it was offered,
each tool result), so a broken wiring (a wrong tool name, a denied permission, a command that does
not install) fails it. The fork's answers are printed step by step (`pytest -s`) and written to
$AGENTIC_SPECKIT_TRANSCRIPT if set."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mcp_server import naming
from mcp_server.speckit_extension.install import source_dir
from tests.integration.test_speckit_flow import FEATURE, IDENTITY, TASKS_FILE, Oracle, agent_push, make_project, result
from tests.support.git_remotes import git
from tests.support.runner_env import BIN, Cluster, install_chart, server_env
from tests.support.runner_harness import offline_env
from tests.support.scripted_model import ScriptedModel, ToolCall, Turn, bash, edit, read, turn_index
from tests.support.speckit_fork import Fork
from tests.support.testenv import REPO_ROOT, TestEnv

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

FEATURE_DIR = f"specs/{FEATURE}"
UTILS = ".specify/scripts/bash/tasks-meta-utils.sh"
DELEGATE = "speckit.agentic-runner.delegate"
FOLLOW = "speckit.agentic-runner.follow"
GREET = "def greet():\n    return 'hello'\n"
GREET_BY_NAME = "def greet(name):\n    return f'hello {name}'\n"
TOOLS = ("spawn_async_tasks", "stream_task_logs", "list_agents", "get_task_status", "merge_task_branches")


def check_status(*task_ids: str) -> ToolCall:
    line = "; ".join(f'echo "{t}: $(bash {UTILS} check-status {t} {FEATURE_DIR})"' for t in task_ids)
    return bash(line, "spec-kit check-status")


def dispatch(task_id: str, description: str) -> ToolCall:
    """The fork's dispatch-async, as the delegate command shows it."""
    return bash(f'bash {UTILS} dispatch-async {task_id} general "{description}" "See plan.md" '
                f'"Keep the public API" "Commit your work" {FEATURE_DIR}', f"dispatch-async {task_id}")


def tool(name: str, **args: Any) -> ToolCall:
    return ToolCall(f"agentic-runner_{name}", args)


def logs_from_cursor(task_ids: list[str]) -> Callable[[dict[str, Any]], Turn]:
    """stream_task_logs from the cursor of the previous result the model got."""

    def turn(body: dict[str, Any]) -> Turn:
        cursor = last_json(body, "stream_task_logs")["cursor"]
        return Turn(tool_calls=(tool("stream_task_logs", task_ids=task_ids, wait_seconds=20, cursor=cursor),))

    return turn


# -- what the model received ---------------------------------------------------------------------


def tool_exchanges(body: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(tool name, arguments, result text) of every tool result in a request, in order: what
    OpenCode passed back to the model."""
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    out: list[tuple[str, dict[str, Any], str]] = []
    for message in body.get("messages", []):
        for call in message.get("tool_calls") or []:
            calls[call["id"]] = (call["function"]["name"], json.loads(call["function"]["arguments"] or "{}"))
        if message.get("role") == "tool":
            content = message.get("content")
            text = content if isinstance(content, str) else "".join(
                p.get("text", "") for p in content or [] if isinstance(p, dict))
            name, args = calls.get(message.get("tool_call_id", ""), ("?", {}))
            out.append((name, args, text))
    return out


def tool_results(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name, text) for name, _args, text in tool_exchanges(body)]


def spec_kit_lines(session: Session) -> list[str]:
    """What the model did and got, for the transcript: the fork's scripts it ran through OpenCode's
    bash tool, and the MCP tools it called (each result's message)."""
    out = []
    for name, args, text in tool_exchanges(session.requests[-1]):
        if name == "bash" and UTILS in str(args.get("command")):
            out.append(f"(model, OpenCode bash) $ {args['command']}\n{text.rstrip()}")
        elif name.startswith("agentic-runner_"):
            shown = {k: v for k, v in args.items() if k != "cursor"}
            try:
                got = json.loads(text)
            except ValueError:
                got = {"message": text}
            said = got.get("message") or (
                f"{len(got.get('lines', []))} line(s), all_finished={got.get('all_finished')}, tasks "
                + ", ".join(f"{t['task_id']}={t['phase']}" for t in got.get("tasks", [])))
            out.append(f"(model, MCP) {name} {json.dumps(shown)}\n-> {said}")
    return out


def last_json(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The last result of MCP tool `name` the model got, parsed (the tool's structured JSON)."""
    texts = [text for tool_name, text in tool_results(body) if tool_name == f"agentic-runner_{name}"]
    assert texts, f"the model got no result of {name}: {tool_results(body)}"
    try:
        return dict(json.loads(texts[-1]))
    except ValueError as exc:
        raise AssertionError(f"the result of {name} the model got is not the tool's JSON: {texts[-1][:2000]}") from exc


def user_text(body: dict[str, Any]) -> str:
    parts = []
    for message in body.get("messages", []):
        if message.get("role") == "user":
            content = message.get("content")
            parts.append(content if isinstance(content, str) else "".join(
                p.get("text", "") for p in content or [] if isinstance(p, dict)))
    return "\n".join(parts)


def offered_tools(body: dict[str, Any]) -> set[str]:
    return {t["function"]["name"] for t in body.get("tools") or []}


@dataclass
class Session:
    """One `opencode run`: its script (a turn may be computed from the request: the cursor the model
    got), the requests the model received, and OpenCode's JSON events."""

    turns: list[Turn | Callable[[dict[str, Any]], Turn]]
    play: dict[int, Callable[[], None]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def turn(self, body: dict[str, Any]) -> Turn:
        self.requests.append(body)
        index = turn_index(body)
        if index in self.play:  # the world moves on before the model answers this turn
            try:
                self.play.pop(index)()
            except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
                self.errors.append(exc)
        if index >= len(self.turns):
            return Turn(text="Done.")
        step = self.turns[index]
        return step(body) if callable(step) else step

    def results(self) -> list[tuple[str, str]]:
        """Every tool result of the session, as the model got them by its last request."""
        return tool_results(self.requests[-1])


class Main:
    """The user's OpenCode in the project: one scripted model, one `opencode run` at a time."""

    def __init__(self, model: ScriptedModel, opencode: str, repo: Path, env: dict[str, str]) -> None:
        self.model, self.opencode, self.repo, self.env = model, opencode, repo, env
        self.session: Session | None = None
        self.events: list[dict[str, Any]] = []
        self.transcript: list[str] = []

    def select(self, body: dict[str, Any]) -> list[Turn]:
        assert self.session is not None
        turn = self.session.turn(body)
        # The scripted model reads turn `turn_index(body)` of the list it gets.
        return [Turn()] * turn_index(body) + [turn]

    def run(
        self, command: str, arguments: str, session: Session, play: dict[int, Callable[[], None]] | None = None
    ) -> Session:
        """`opencode run --command <command> <arguments>`; `play[i]` runs before the model answers turn i."""
        session.play.update(play or {})
        self.session = session
        proc = subprocess.run(
            [self.opencode, "run", "--format", "json", "--dir", str(self.repo), "--model", self.model.model,
             "--command", command, arguments],
            cwd=self.repo, env=self.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600,
        )
        self.events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        if session.errors:
            raise session.errors[0]
        assert not session.play, f"the session ended before turn(s) {sorted(session.play)}"
        errors = [e for e in self.events if e.get("type") == "error"]
        assert proc.returncode == 0 and not errors, f"opencode run --command {command}: {errors}\n{proc.stderr[-4000:]}"
        assert session.requests, f"the model was never asked:\n{proc.stderr[-4000:]}"
        self.transcript += [f"# $ opencode run --command {command} {arguments}", *spec_kit_lines(session)]
        return session

    def tool_states(self) -> list[tuple[str, str]]:
        """(tool, status) of every tool call in OpenCode's own events of the last run."""
        return [(e["part"]["tool"], e["part"]["state"]["status"]) for e in self.events if e.get("type") == "tool_use"]


def opencode_env(tmp_path: Path, testenv: TestEnv, namespace: str, repo: Path, model: ScriptedModel) -> dict[str, str]:
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    env = {**offline_env(home), **server_env(testenv, namespace, repo, **IDENTITY)}
    env.update(
        HOME=str(home),
        PATH=f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        SCRIPTED_API_KEY="test-key",
        OPENCODE_CONFIG_CONTENT=json.dumps(
            {**model.opencode_config(), "autoupdate": False, "share": "disabled", "agent": {"title": {"disable": True}}}
        ),
        OPENCODE_DISABLE_MODELS_FETCH="1",
        OPENCODE_DISABLE_AUTOUPDATE="1",
        OPENCODE_DISABLE_SHARE="1",
        OPENCODE_DISABLE_LSP_DOWNLOAD="1",
        PWD=str(repo),
    )
    return env


def set_up_project(tmp_path: Path, env: dict[str, str]) -> tuple[Path, Any, Fork]:
    """A spec-kit project as a user has it: the fork's scripts, the extension installed with the
    project's CLI, this repository's opencode.json and .opencode/ copied in (README: spec-kit)."""
    repo, remote = make_project(tmp_path)
    fork = Fork.install(repo, repo / FEATURE_DIR)
    installed = subprocess.run(
        [str(BIN / "agentic-runner"), "speckit", "install"], cwd=repo, env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert installed.returncode == 0, installed.stderr
    assert f"command  /{DELEGATE}" in installed.stdout
    shutil.copy(REPO_ROOT / "opencode.json", repo / "opencode.json")
    shutil.copytree(REPO_ROOT / ".opencode", repo / ".opencode", dirs_exist_ok=True)
    return repo, remote, fork


def files_under(directory: Path, root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in directory.rglob("*") if path.is_file()}


def shipped_command(name: str, heading: str) -> str:
    """The body of the extension's command file as it ships, for FEATURE_DIR (its frontmatter cut off here, not by
    the installer under test): what OpenCode must hand the model."""
    text = (source_dir() / "commands" / f"{name.rsplit('.', 1)[-1]}.md").read_text()
    body = text.split("\n---\n", 1)[1].strip()
    assert body.startswith(heading), body[:200]
    return body.replace("$ARGUMENTS", FEATURE_DIR)


def test_opencode_implements_a_feature_through_the_extensions_commands(
    testenv: TestEnv, namespace: str, tmp_path: Path, opencode_bin: str
) -> None:
    install_chart(testenv, namespace)
    cluster = Cluster(testenv, namespace)

    holder: dict[str, Main] = {}
    with ScriptedModel(lambda body: holder["main"].select(body)) as model:
        env = opencode_env(tmp_path, testenv, namespace, tmp_path / "repo", model)
        repo, remote, fork = set_up_project(tmp_path, env)
        main = holder["main"] = Main(model, opencode_bin, repo, env)
        oracle = Oracle(fork)

        def step(title: str, *task_ids: str) -> tuple[dict[str, str], dict[str, Any]]:
            """The fork's answers, from the outside, after `title`."""
            got = oracle.step(title, *task_ids)
            main.transcript.extend(oracle.lines)
            oracle.lines.clear()
            return got

        # 1. /implement's before_implement hook: /speckit.agentic-runner.delegate.
        delegate = main.run(DELEGATE, FEATURE_DIR, Session([
            Turn(text="Initialising the feature's tasks_meta.json.", tool_calls=(
                bash(f"test -f {FEATURE_DIR}/tasks_meta.json || bash {UTILS} init {FEATURE_DIR}", "spec-kit init"),)),
            Turn(tool_calls=(tool("spawn_async_tasks", tasks_file=TASKS_FILE, dry_run=True),)),
            Turn(text="Writing the delegation prompts of the tasks that start now.", tool_calls=(
                dispatch("T001", "Create the greeting module in src/greet.py"),
                dispatch("T002", "Create the farewell module in src/farewell.py"),
            )),
            Turn(tool_calls=(tool("spawn_async_tasks", tasks_file=TASKS_FILE),)),
            Turn(tool_calls=(check_status("T001", "T002", "T004"),)),
            Turn(text="**Tasks T001, T002 are handed to agents. Do NOT implement them.** T004 waits for phase 1."),
        ]))

        first = delegate.requests[0]
        assert shipped_command(DELEGATE, "# Hand the [ASYNC] tasks to the agents") in user_text(first)
        assert {f"agentic-runner_{t}" for t in TOOLS} <= offered_tools(first), sorted(offered_tools(first))
        assert main.tool_states() == [
            ("bash", "completed"), ("agentic-runner_spawn_async_tasks", "completed"), ("bash", "completed"),
            ("bash", "completed"), ("agentic-runner_spawn_async_tasks", "completed"), ("bash", "completed")]
        dry = json.loads(delegate.results()[1][1])
        assert (dry["dry_run"], dry["handles"]) == (True, [])
        assert [(p["task_id"], p["action"]) for p in dry["plan"]] == [
            ("T001", "spawn"), ("T002", "spawn"), ("T004", "wait")]
        plan = last_json(delegate.requests[-1], "spawn_async_tasks")
        assert [(p["task_id"], p["phase"], p["action"]) for p in plan["plan"]] == [
            ("T001", "Phase 1", "spawn"), ("T002", "Phase 1", "spawn"), ("T004", "Phase 2", "wait")]
        assert plan["plan"][2]["waits_for"] == ["T001", "T002", "T003"]
        jobs = {h["task_id"]: h["job"] for h in plan["handles"]}
        assert sorted(jobs) == ["T001", "T002"]
        assert delegate.results()[-1] == ("bash", "T001: running\nT002: running\nT004: no_job\n")
        assert sorted(j["metadata"]["name"] for j in cluster.jobs()) == sorted(jobs.values())

        # The prompt dispatch-async wrote (the model ran it through OpenCode's bash) is the Job's.
        prompt = (repo / FEATURE_DIR / ".async_state" / "delegation_prompts" / "T001.md").read_text()
        assert "**Task ID:** T001" in prompt and "Create the greeting module in src/greet.py" in prompt
        job = cluster.get("job", jobs["T001"])
        context = json.loads(job["spec"]["template"]["metadata"]["annotations"][naming.ANNOTATION_TASK_CONTEXT])
        assert context["description"] == prompt.strip()

        statuses, summary = step("after /speckit.agentic-runner.delegate (T001, T002 spawned; T004 waits)",
                                 "T001", "T002", "T004")
        assert statuses == {"T001": "running", "T002": "running", "T004": "no_job"}  # T004 waits, undispatched
        assert summary == {"total_tasks": 5, "pending": 3, "in_progress": 2, "completed": 0, "failed": 0,
                           "sync_tasks": 2, "async_tasks": 3, "all_done": False}
        meta = json.loads(fork.meta.read_text())
        assert {t: (m["status"], m["execution_mode"]) for t, m in meta["tasks"].items()} == {
            "T001": ("in_progress", "ASYNC"), "T002": ("in_progress", "ASYNC"), "T003": ("pending", "SYNC"),
            "T004": ("pending", "ASYNC"), "T005": ("pending", "SYNC")}

        # 2. /speckit.agentic-runner.follow: the agents work; T001 succeeds (pushed), T002 fails.
        for task in ("T001", "T002"):
            cluster.log(cluster.pod_of(jobs[task]), f"{task}: working on it")
        heads: dict[str, str] = {}

        def phase_1_agents() -> None:
            heads["T001"] = agent_push(tmp_path, remote, "T001", "src/greet.py", GREET)
            cluster.finish(cluster.pod_of(jobs["T001"]), 0, result("T001", "succeeded", heads["T001"]))
            cluster.finish(cluster.pod_of(jobs["T002"]), 1, result("T002", "failed", None, error="tests fail"))
            for task in ("T001", "T002"):
                cluster.wait_job_condition(jobs[task])

        follow = main.run(FOLLOW, FEATURE_DIR, Session([
            Turn(tool_calls=(tool("stream_task_logs", task_ids=["T001", "T002"], wait_seconds=2),)),
            Turn(tool_calls=(check_status("T001", "T002"),)),
            logs_from_cursor(["T001", "T002"]),  # once the agents have ended (below)
            Turn(tool_calls=(check_status("T001", "T002"),)),
            Turn(tool_calls=(bash(f"cat {FEATURE_DIR}/.async_state/delegation_errors/T002.txt", "why T002 failed"),)),
            Turn(tool_calls=(tool("merge_task_branches", feature=FEATURE_DIR),)),
            Turn(tool_calls=(read(f"{FEATURE_DIR}/tasks.md"),)),
            Turn(tool_calls=(edit(f"{FEATURE_DIR}/tasks.md", "- [ ] T001", "- [X] T001"),)),
            Turn(tool_calls=(tool("spawn_async_tasks", tasks_file=TASKS_FILE, dry_run=True),)),
            Turn(tool_calls=(bash(f"bash {UTILS} summary {FEATURE_DIR}/tasks_meta.json", "spec-kit summary"),)),
            Turn(text="T001 completed and merged; T002 failed (tests fail): retry it or do it by hand?"),
        ]), play={2: phase_1_agents})

        assert shipped_command(FOLLOW, "# Follow the agents") in user_text(follow.requests[0])
        results = follow.results()
        assert [name for name, _ in results] == [
            "agentic-runner_stream_task_logs", "bash", "agentic-runner_stream_task_logs", "bash", "bash",
            "agentic-runner_merge_task_branches", "read", "edit", "agentic-runner_spawn_async_tasks", "bash"]
        first_logs = json.loads(results[0][1])
        assert [(line["task_id"], line["text"]) for line in first_logs["lines"]] == [
            ("T001", "T001: working on it"), ("T002", "T002: working on it")]
        assert first_logs["all_finished"] is False
        assert results[1][1] == "T001: running\nT002: running\n"  # before the agents end
        ended = json.loads(results[2][1])
        assert ended["all_finished"] is True and ended["lines"] == []  # the cursor: nothing twice
        assert {t["task_id"]: t["phase"] for t in ended["tasks"]} == {"T001": "succeeded", "T002": "failed"}
        assert results[3][1] == "T001: completed\nT002: failed\n"  # after ONE observing call
        assert "tests fail" in results[4][1]
        merged = json.loads(results[5][1])
        assert [(e["task_id"], e["action"]) for e in merged["entries"]] == [("T001", "merged"), ("T002", "skip")]
        assert (merged["pushed"], merged["sync_ready"]) == (True, ["T003"])
        assert remote.show(FEATURE, "src/greet.py") == GREET
        again = json.loads(results[8][1])
        assert [(p["task_id"], p["action"], p["reason"]) for p in again["plan"]] == [
            ("T002", "exists", "phase failed"), ("T004", "wait", "Phase 1 is not finished (T002, T003)")]
        assert json.loads(results[9][1])["all_done"] is False

        statuses, summary = step("after /speckit.agentic-runner.follow (T001 succeeded and merged, T002 failed)",
                                 "T001", "T002", "T004")
        assert statuses == {"T001": "completed", "T002": "failed", "T004": "no_job"}
        assert (summary["completed"], summary["failed"], summary["in_progress"], summary["all_done"]) == (
            1, 1, 0, False)
        meta = json.loads(fork.meta.read_text())["tasks"]
        assert meta["T001"]["result_summary"] == "T001: done" and meta["T002"]["failure_reason"] == "tests fail"
        assert meta["T001"]["agentic_runner"]["head_sha"] == heads["T001"]
        assert not [j for j in cluster.jobs() if "t004" in j["metadata"]["name"]]

        # 3. The user does the failed T002 by hand and the [SYNC] T003, as the follow command offers.
        assert git("rev-parse", "HEAD", cwd=repo).strip() == remote.sha(FEATURE)  # the merge was made here
        (repo / "src" / "farewell.py").write_text("def farewell():\n    return 'bye'\n")
        tasks_md = repo / FEATURE_DIR / "tasks.md"
        ticked = tasks_md.read_text().replace("- [ ] T002", "- [X] T002").replace("- [ ] T003", "- [X] T003")
        tasks_md.write_text(ticked)
        fork.run("complete-task", str(fork.meta), "T002", "done by hand")
        fork.run("complete-task", str(fork.meta), "T003", "layout reviewed")
        git("add", "src/farewell.py", f"{FEATURE_DIR}/tasks.md", cwd=repo)
        git("-c", "user.name=dev", "-c", "user.email=dev@example.com", "commit", "-q", "-m", "T002, T003 by hand",
            cwd=repo)
        git("push", "-q", "origin", FEATURE, cwd=repo)
        step("the user did T002 by hand and T003", "T001", "T002", "T004")

        # 4. /speckit.agentic-runner.delegate again: phase 2 (T004) starts.
        delegate = main.run(DELEGATE, FEATURE_DIR, Session([
            Turn(tool_calls=(tool("spawn_async_tasks", tasks_file=TASKS_FILE, dry_run=True),)),
            Turn(tool_calls=(dispatch("T004", "Add a name parameter to src/greet.py"),)),
            Turn(tool_calls=(tool("spawn_async_tasks", tasks_file=TASKS_FILE),)),
            Turn(tool_calls=(check_status("T004"),)),
            Turn(text="**Task T004 is handed to an agent. Do NOT implement it.**"),
        ]))
        phase_2 = last_json(delegate.requests[-1], "spawn_async_tasks")
        assert [(p["task_id"], p["phase"], p["action"]) for p in phase_2["plan"]] == [("T004", "Phase 2", "spawn")]
        jobs.update({h["task_id"]: h["job"] for h in phase_2["handles"]})
        assert delegate.results()[-1] == ("bash", "T004: running\n")
        prompt = (repo / FEATURE_DIR / ".async_state" / "delegation_prompts" / "T004.md").read_text()
        job = cluster.get("job", jobs["T004"])
        context = json.loads(job["spec"]["template"]["metadata"]["annotations"][naming.ANNOTATION_TASK_CONTEXT])
        assert "**Task ID:** T004" in prompt and context["description"] == prompt.strip()
        step("phase 2 started (T004)", "T002", "T004")

        # 5. /speckit.agentic-runner.follow: T004 succeeds; merge-back; T005 [SYNC] is the user's.
        def phase_2_agent() -> None:
            heads["T004"] = agent_push(tmp_path, remote, "T004", "src/greet.py", GREET_BY_NAME)
            cluster.finish(cluster.pod_of(jobs["T004"]), 0, result("T004", "succeeded", heads["T004"]))
            cluster.wait_job_condition(jobs["T004"])

        follow = main.run(FOLLOW, FEATURE_DIR, Session([
            Turn(tool_calls=(tool("stream_task_logs", task_ids=["T004"], wait_seconds=2),)),
            logs_from_cursor(["T004"]),
            Turn(tool_calls=(check_status("T004"),)),
            Turn(tool_calls=(tool("merge_task_branches", feature=FEATURE_DIR),)),
            Turn(tool_calls=(bash(f"bash {UTILS} summary {FEATURE_DIR}/tasks_meta.json", "spec-kit summary"),)),
            Turn(tool_calls=(tool("cancel_task", task_id="T004"),)),  # opencode.json: ask; nobody is asked here
            Turn(text="T004 completed and merged; T005 is yours."),
        ]), play={1: phase_2_agent})
        results = follow.results()
        # cancel_task asks first (opencode.json): in a headless run nobody can say yes, so OpenCode
        # refuses the call and nothing is cancelled.
        cancel = [e["part"] for e in main.events if e.get("type") == "tool_use"][-1]
        assert (cancel["tool"], cancel["state"]["status"], cancel["state"]["error"]) == (
            "agentic-runner_cancel_task", "error", "The user rejected permission to use this specific tool call.")
        assert cluster.get("job", jobs["T004"])["metadata"]["name"] == jobs["T004"]
        assert results[2][1] == "T004: completed\n"
        merged = json.loads(results[3][1])
        assert [(e["task_id"], e["action"]) for e in merged["entries"]][-1] == ("T004", "merged")
        assert (merged["pushed"], merged["sync_ready"]) == (True, ["T005"])
        assert remote.show(FEATURE, "src/greet.py") == GREET_BY_NAME
        statuses, summary = step("after the second follow (T004 merged; T005 open)", "T001", "T002", "T004")
        assert statuses == {"T001": "completed", "T002": "failed", "T004": "completed"}  # T002's agent did fail
        assert summary == {"total_tasks": 5, "pending": 1, "in_progress": 0, "completed": 4, "failed": 0,
                           "sync_tasks": 2, "async_tasks": 3, "all_done": False}

        # 6. The user does T005: the feature is done, and the fork says so.
        fork.run("complete-task", str(fork.meta), "T005", "wired")
        _statuses, summary = step("the user did T005")
        assert summary["all_done"] is True

        # OpenCode's runs added nothing to the .opencode/ the user copied from this repository (it
        # writes .opencode/.gitignore on a first run: the repository ships it as OpenCode writes it).
        installed = {f".opencode/commands/{name}.md" for name in (DELEGATE, FOLLOW, "speckit.agentic-runner.merge")}
        shipped = set(git("ls-files", ".opencode", cwd=REPO_ROOT).split())
        assert ".opencode/.gitignore" in shipped
        assert files_under(repo / ".opencode", repo) == shipped | installed
        assert (repo / ".opencode" / ".gitignore").read_bytes() == (REPO_ROOT / ".opencode" / ".gitignore").read_bytes()

    transcript = "\n".join(main.transcript)
    print(transcript)
    if os.environ.get("AGENTIC_SPECKIT_TRANSCRIPT"):
        Path(os.environ["AGENTIC_SPECKIT_TRANSCRIPT"]).write_text(transcript + "\n")
