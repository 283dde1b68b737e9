"""The task runner on the host: the real runner process, the real OpenCode binary driven by a scripted
model on 127.0.0.1, real git remotes (file://, git daemon, sshd with strict host keys, smart HTTP
with a token). What is checked is what a reviewer and the server see: the remote's branches, the
runner's log lines and its result JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import FINAL_TEXT, TASK_BRANCH, edit_script
from tests.support.git_remotes import (
    BASE_BRANCH,
    BareRemote,
    git_daemon,
    http_git,
    make_client_key,
    sshd,
)
from tests.support.runner_harness import SCRIPTED_API_KEY, RunnerRun, task_context
from tests.support.scripted_model import ScriptedModel, Turn, bash, conversation_text

pytestmark = pytest.mark.e2e

GIT_TOKEN = "glpat-runner-test-token-5f1c2a9e7b"
PHASES = ["setup", "clone", "branch", "agent", "commit", "push", "done"]


@contextmanager
def transport(kind: str, remote: BareRemote, tmp: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The remote's URL over `kind` and the runner env that authenticates to it."""
    if kind == "file":
        yield remote.url, {}
    elif kind == "git-daemon":
        with git_daemon(remote.path.parent) as prefix:
            yield f"{prefix}/{remote.path.name}", {}
    elif kind == "ssh":
        keys = make_client_key(tmp / "keys")
        with sshd(tmp / "sshd", [keys.public_key]) as server:
            (keys.secret_dir / "known_hosts").write_text(server.known_hosts())
            yield (
                server.url(remote.path),
                {"AGENTIC_GIT_AUTH": "ssh", "AGENTIC_GIT_SSH_DIR": str(keys.secret_dir)},
            )
    elif kind == "token":
        with http_git(remote.path.parent, "agent", GIT_TOKEN) as prefix:
            yield (
                f"{prefix}/{remote.path.name}",
                {
                    "AGENTIC_GIT_AUTH": "token",
                    "AGENTIC_GIT_USERNAME": "agent",
                    "AGENTIC_GIT_TOKEN": GIT_TOKEN,
                },
            )
    else:
        raise AssertionError(kind)


def assert_result_everywhere(run: RunnerRun) -> None:
    """The result is the last stdout line behind the marker and the same JSON in the result file."""
    assert run.result is not None, run.stdout[-3000:]
    assert json.loads(run.result_file_text) == run.result.model_dump(mode="json")
    assert run.exit_code == (0 if run.result.status in ("succeeded", "no_changes") else run.result.exit_code)


@pytest.mark.parametrize("kind", ["file", "git-daemon", "ssh", "token"])
def test_task_edits_a_file_and_pushes_its_branch(kind: str, remote: BareRemote, harness, tmp_path: Path) -> None:
    base_before = remote.sha(BASE_BRANCH)
    main_before = remote.sha("main")
    with transport(kind, remote, tmp_path) as (url, env), ScriptedModel(edit_script()) as model:
        run = harness(model).run(task_context(url), **env)

    assert_result_everywhere(run)
    result = run.result
    assert result is not None
    assert (result.status, result.exit_code, run.exit_code) == ("succeeded", 0, 0), run.stdout[-4000:]
    assert result.task_id == "T001" and result.branch == TASK_BRANCH and result.base == BASE_BRANCH
    assert (result.commits, result.pushed, result.files_changed) == (1, True, ["README.md"])
    assert result.summary == FINAL_TEXT and result.error is None
    # the remote: the task branch has the agent's change, the base and main are untouched
    assert remote.sha(TASK_BRANCH) == result.head_sha
    assert remote.show(TASK_BRANCH, "README.md") == "hello agent\n"
    assert remote.sha(BASE_BRANCH) == base_before and remote.sha("main") == main_before
    assert remote.show(BASE_BRANCH, "README.md") == "hello world\n"
    assert remote.log(TASK_BRANCH)[0].startswith("T001: Change the greeting")
    assert remote.log(TASK_BRANCH, "%an <%ae>")[0] == "Agentic SDLC Agent <agent@agentic-sdlc.local>"
    # the edit went through OpenCode's own edit tool
    edits = run.tool_uses("edit")
    assert [e["part"]["state"]["status"] for e in edits] == ["completed"]
    # the runner's own lines carry every phase, in order
    assert run.phases() == PHASES
    # the model got the rendered prompt: task id, description, rules, context file
    prompt = conversation_text(model.recorded.all()[0])
    assert "## Task T001" in prompt and "Change the greeting in README.md" in prompt
    assert f"never touch the base branch `{BASE_BRANCH}`" in prompt and "# Plan" in prompt


def test_no_changes(remote: BareRemote, harness) -> None:
    script = [Turn(text="README.md already says what the task asks for; nothing to change.")]
    with ScriptedModel(script) as model:
        run = harness(model).run(task_context(remote.url))
    assert_result_everywhere(run)
    assert run.result is not None
    assert (run.result.status, run.exit_code) == ("no_changes", 0)
    assert (run.result.commits, run.result.pushed, run.result.files_changed) == (0, False, [])
    assert run.result.summary.startswith("README.md already says")
    assert TASK_BRANCH not in remote.branches()


def test_push_rejected_by_a_hook_fails_with_the_reason(remote: BareRemote, harness) -> None:
    remote.install_hook("pre-receive", "#!/bin/sh\necho 'policy: agent branches need ticket ABC-1' >&2\nexit 1\n")
    base_before = remote.sha(BASE_BRANCH)
    with ScriptedModel(edit_script()) as model:
        run = harness(model).run(task_context(remote.url))
    assert_result_everywhere(run)
    result = run.result
    assert result is not None
    assert (result.status, run.exit_code, result.pushed) == ("failed", 1, False)
    assert result.commits == 1 and result.files_changed == ["README.md"]
    assert "push of agentic/001-feature/T001 failed: the remote rejected the push" in (result.error or "")
    assert "policy: agent branches need ticket ABC-1" in (result.error or "")
    assert "pre-receive hook declined" in (result.error or "")
    assert TASK_BRANCH not in remote.branches() and remote.sha(BASE_BRANCH) == base_before
    # a rejection is permanent: tried once
    assert not [r for r in run.runner_lines() if "retrying" in r["msg"]]


def test_unauthorised_ssh_key_fails_clearly(remote: BareRemote, harness, tmp_path: Path) -> None:
    allowed = make_client_key(tmp_path / "keys", "allowed")
    stranger = make_client_key(tmp_path / "keys", "stranger")
    with sshd(tmp_path / "sshd", [allowed.public_key]) as server, ScriptedModel(edit_script()) as model:
        (stranger.secret_dir / "known_hosts").write_text(server.known_hosts())
        run = harness(model).run(
            task_context(server.url(remote.path)),
            AGENTIC_GIT_AUTH="ssh",
            AGENTIC_GIT_SSH_DIR=str(stranger.secret_dir),
        )
        assert model.recorded.all() == []  # the agent never started
    assert_result_everywhere(run)
    result = run.result
    assert result is not None
    assert (result.status, run.exit_code, result.pushed, result.commits) == ("failed", 1, False, 0)
    assert result.error is not None
    assert result.error.startswith(
        "clone of the base branch 001-feature failed: the remote refused the credentials "
        "(check AGENTIC_GIT_AUTH and the git Secret)"
    )
    assert "Permission denied (publickey)" in result.error
    assert TASK_BRANCH not in remote.branches()


def test_unknown_host_key_is_refused(remote: BareRemote, harness, tmp_path: Path) -> None:
    keys = make_client_key(tmp_path / "keys")
    other = make_client_key(tmp_path / "other-host")  # a key that is not the server's host key
    with sshd(tmp_path / "sshd", [keys.public_key]) as server, ScriptedModel(edit_script()) as model:
        fake_line = " ".join(other.public_key.split()[:2])
        (keys.secret_dir / "known_hosts").write_text(f"[127.0.0.1]:{server.port} {fake_line}\n")
        run = harness(model).run(
            task_context(server.url(remote.path)),
            AGENTIC_GIT_AUTH="ssh",
            AGENTIC_GIT_SSH_DIR=str(keys.secret_dir),
        )
    assert run.result is not None and run.result.status == "failed"
    assert "the server's host key is not in known_hosts (strict host-key checking)" in (run.result.error or "")
    assert TASK_BRANCH not in remote.branches()


def test_ssh_without_known_hosts_is_refused_before_anything_happens(
    remote: BareRemote, harness, tmp_path: Path
) -> None:
    keys = make_client_key(tmp_path / "keys")
    with ScriptedModel(edit_script()) as model:
        h = harness(model)
        run = h.run(task_context(remote.url), AGENTIC_GIT_AUTH="ssh", AGENTIC_GIT_SSH_DIR=str(keys.secret_dir))
    assert run.result is not None and run.result.status == "failed" and run.exit_code == 1
    assert f"the known_hosts file {keys.secret_dir / 'known_hosts'} is missing or empty" in (run.result.error or "")
    assert list(h.workspace.iterdir()) == []  # nothing was cloned
    assert TASK_BRANCH not in remote.branches()


def test_bad_token_fails_clearly_and_the_token_is_never_printed(remote: BareRemote, harness) -> None:
    wrong = "glpat-wrong-token-0000000000"
    with http_git(remote.path.parent, "agent", GIT_TOKEN) as prefix, ScriptedModel(edit_script()) as model:
        run = harness(model).run(
            task_context(f"{prefix}/{remote.path.name}"),
            AGENTIC_GIT_AUTH="token",
            AGENTIC_GIT_USERNAME="agent",
            AGENTIC_GIT_TOKEN=wrong,
        )
    assert run.result is not None
    assert (run.result.status, run.exit_code) == ("failed", 1)
    assert "the remote refused the credentials" in (run.result.error or "")
    assert wrong not in run.stdout and wrong not in run.result_file_text


def test_model_error_fails_the_task(remote: BareRemote, harness) -> None:
    script = [Turn(http_error=401, text="Incorrect API key provided")]
    with ScriptedModel(script) as model:
        run = harness(model).run(task_context(remote.url))
    assert_result_everywhere(run)
    assert run.result is not None
    assert (run.result.status, run.exit_code, run.result.pushed) == ("failed", 1, False)
    assert "Incorrect API key provided" in (run.result.error or "")
    assert TASK_BRANCH not in remote.branches()


def test_secret_values_appear_nowhere_in_the_output(remote: BareRemote, harness) -> None:
    """The model makes the agent print the LLM key (in a bash tool's output) and repeats it in its
    final message; the git token is not even in the agent's environment."""
    llm_secret_env = "ANTHROPIC_API_KEY"
    llm_secret = "sk-ant-api03-redaction-test-8c1f3e"
    script = [
        Turn(
            tool_calls=(
                bash(
                    f'echo "llm=${llm_secret_env} scripted=$SCRIPTED_API_KEY git=${{AGENTIC_GIT_TOKEN:-absent}}"',
                    "print the keys",
                ),
            )
        ),
        Turn(text=f"The key is {llm_secret} and the other is {SCRIPTED_API_KEY}."),
    ]
    with http_git(remote.path.parent, "agent", GIT_TOKEN) as prefix, ScriptedModel(script) as model:
        run = harness(model).run(
            task_context(f"{prefix}/{remote.path.name}"),
            AGENTIC_GIT_AUTH="token",
            AGENTIC_GIT_USERNAME="agent",
            AGENTIC_GIT_TOKEN=GIT_TOKEN,
            **{llm_secret_env: llm_secret},
        )
    assert run.result is not None and run.result.status == "no_changes", run.stdout[-3000:]
    bash_uses = run.tool_uses("bash")
    assert len(bash_uses) == 1
    output = bash_uses[0]["part"]["state"]["output"]
    assert "llm=[REDACTED] scripted=[REDACTED] git=absent" in output
    for secret in (llm_secret, SCRIPTED_API_KEY, GIT_TOKEN):
        assert secret not in run.stdout
        assert secret not in run.result_file_text
    assert run.result.summary == "The key is [REDACTED] and the other is [REDACTED]."


def test_processes_the_agent_left_running_are_ended(remote: BareRemote, harness) -> None:
    """OpenCode runs shell commands in process groups of their own; what the agent started in the
    background must not outlive the task (on a laptop, with the local backend)."""
    marker = f"sleep {40000 + os.getpid() % 10000}"
    script = [Turn(tool_calls=(bash(f"nohup {marker} >/dev/null 2>&1 &", "start a server"),)), Turn(text="Started.")]
    with ScriptedModel(script) as model:
        run = harness(model).run(task_context(remote.url))
    assert run.result is not None and run.result.status == "no_changes"
    assert [r["msg"] for r in run.runner_lines() if "left running" in r["msg"]] == [
        "ended 1 process(es) the agent left running"
    ]
    still = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    assert still == []


def _edit_then_hold() -> list[Turn]:
    return [*edit_script()[:2], Turn(text="Thinking about the tests...", hold=True)]


HOLD_REQUEST = 3  # the third model request gets the `hold` turn: the edit is done, the agent waits


def sigterm_mid_task(remote: BareRemote, harness, deadline: datetime, **env: str) -> RunnerRun:
    """Start a task whose agent edits README.md and then waits on the model; send SIGTERM once it waits."""
    with ScriptedModel(_edit_then_hold()) as model:
        running = harness(model).start(task_context(remote.url, deadline=deadline.isoformat()), **env)
        model.recorded.wait_for(HOLD_REQUEST)
        running.send(signal.SIGTERM)
        return running.finish()


def assert_wip_pushed(run: RunnerRun, remote: BareRemote, status: str, error_start: str) -> None:
    assert_result_everywhere(run)
    result = run.result
    assert result is not None
    assert (result.status, run.exit_code) == (status, result.exit_code)
    assert result.pushed and result.commits == 1 and result.files_changed == ["README.md"]
    assert (result.error or "").startswith(error_start)
    assert remote.sha(TASK_BRANCH) == result.head_sha
    assert remote.log(TASK_BRANCH)[0].startswith("WIP T001: ")
    assert remote.show(TASK_BRANCH, "README.md") == "hello agent\n"


def test_sigterm_mid_task_cancels_and_pushes_wip(remote: BareRemote, harness) -> None:
    run = sigterm_mid_task(remote, harness, datetime.now(UTC) + timedelta(hours=1))
    assert_wip_pushed(run, remote, "cancelled", "stopped: SIGTERM received")
    assert run.exit_code == 130


def test_sigterm_at_the_deadline_times_out_and_pushes_wip(remote: BareRemote, harness) -> None:
    """Kubernetes sends SIGTERM when activeDeadlineSeconds has passed: a signal within the
    tolerance of the task's deadline is a timeout, not a cancel. The deadline is far enough away that
    the runner does not stop by itself first, however slowly OpenCode starts on a loaded machine, and
    the tolerance wide enough that the SIGTERM sent once the agent waits falls within it."""
    deadline = datetime.now(UTC) + timedelta(minutes=10)
    run = sigterm_mid_task(remote, harness, deadline, AGENTIC_DEADLINE_TOLERANCE_SECONDS="660")
    assert_wip_pushed(run, remote, "timed_out", "stopped: SIGTERM received at the task's deadline")
    assert run.exit_code == 124


def test_a_bad_context_is_refused_and_nothing_is_cloned(remote: BareRemote, harness) -> None:
    with ScriptedModel(edit_script()) as model:
        h = harness(model)
        run = h.run(task_context(remote.url, task_branch=BASE_BRANCH))
        assert model.recorded.all() == []
    assert run.result is not None
    assert (run.result.status, run.exit_code) == ("failed", 1)
    assert run.result.task_id == "T001" and run.result.base == BASE_BRANCH
    assert "invalid task_branch: it is the base branch" in (run.result.error or "")
    assert list(h.workspace.iterdir()) == []
    assert remote.branches() == [BASE_BRANCH, "main"]
