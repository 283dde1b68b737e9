"""The runner in sidecar mode, the pod's containers as processes on the host: `git-clone` (uid 1001)
makes the checkout, the runner with the real OpenCode and the scripted model (uid 1000, no credential
in its environment or readable files) works in it and pushes through the queue, `git-push` (uid 1001)
pushes. Checkpoints keep the work when the runner is killed hard."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import FINAL_TEXT, edit_script
from tests.support.git_remotes import BASE_BRANCH, BareRemote
from tests.support.git_side import TASK_BRANCH, TOKEN, HostPod, ServedPod, served_pod
from tests.support.scripted_model import ScriptedModel, Turn, write

pytestmark = pytest.mark.e2e


@pytest.fixture
def served() -> Iterator[ServedPod]:
    with served_pod("agentic-sidecar-") as served:
        proc = served.pod.clone()
        assert proc.returncode == 0, proc.stdout + proc.stderr
        yield served


@pytest.fixture
def remote(served: ServedPod) -> BareRemote:
    return served.remote


@pytest.fixture
def pod(served: ServedPod) -> HostPod:
    return served.pod


def test_the_runner_works_in_the_clone_and_pushes_through_the_sidecar(
    pod: HostPod, remote: BareRemote, opencode_bin: str
) -> None:
    base = remote.sha(BASE_BRANCH)
    with pod.pusher() as pusher, ScriptedModel(edit_script()) as model:
        run = pod.runner(opencode_bin, model).finish()
        assert pusher.stop() == 0
    assert run.result is not None, run.stdout[-3000:]
    result = run.result
    outcome = (result.status, run.exit_code, result.pushed, result.commits)
    assert outcome == ("succeeded", 0, True, 1), run.stdout[-4000:]
    assert result.files_changed == ["README.md"] and result.summary == FINAL_TEXT
    assert remote.sha(TASK_BRANCH) == result.head_sha and remote.show(TASK_BRANCH, "README.md") == "hello agent\n"
    assert remote.sha(BASE_BRANCH) == base
    msgs = [r["msg"] for r in run.runner_lines()]
    assert f"working in the checkout git-clone made: {pod.checkout}" in msgs
    assert f"pushes go through the queue {pod.queue}" in msgs
    assert not any(m.startswith("cloning ") for m in msgs)  # the runner never cloned
    assert TOKEN not in run.stdout and TOKEN not in pusher.log
    assert json.loads(run.result_file_text) == result.model_dump(mode="json")


def test_checkpoints_keep_the_work_when_the_runner_is_killed_hard(
    pod: HostPod, remote: BareRemote, opencode_bin: str
) -> None:
    script = [
        Turn(tool_calls=(write("docs/part1.md", "# part 1\n"),)),
        Turn(tool_calls=(write("docs/part2.md", "# part 2\n"),)),
        Turn(text="Thinking about part 3...", hold=True),
    ]
    with pod.pusher(), ScriptedModel(script) as model:
        running = pod.runner(opencode_bin, model, AGENTIC_CHECKPOINT_SECONDS="0")
        model.recorded.wait_for(3)
        running.wait_for_line(lambda line: "checkpoint pushed" in line, timeout=120)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the checkpoint after the second step
            if TASK_BRANCH in remote.branches() and "docs/part2.md" in remote.show(TASK_BRANCH, "docs/").split():
                break
            time.sleep(0.3)
        running.send(signal.SIGKILL)  # no grace: what the checkpoints pushed is all there is
        running.proc.wait(timeout=30)
    assert remote.show(TASK_BRANCH, "docs/part1.md") == "# part 1\n"
    assert remote.show(TASK_BRANCH, "docs/part2.md") == "# part 2\n"
    assert remote.log(TASK_BRANCH)[0] == "WIP T001: checkpoint"


def test_a_workflow_change_is_refused_and_the_result_names_the_path(
    pod: HostPod, remote: BareRemote, opencode_bin: str
) -> None:
    script = [
        Turn(tool_calls=(write(".github/workflows/exfiltrate.yml", "on: push\njobs: {}\n"),)),
        Turn(tool_calls=(write("README.md", "hello agent\n"),)),
        Turn(text="Done."),
    ]
    with pod.pusher(), ScriptedModel(script) as model:
        run = pod.runner(opencode_bin, model).finish()
    assert run.result is not None
    assert (run.result.status, run.result.pushed) == ("failed", False)
    assert "refused: the work changes protected paths (.github/workflows/exfiltrate.yml)" in (run.result.error or "")
    assert TASK_BRANCH not in remote.branches()


def test_sigterm_pushes_the_work_so_far_through_the_sidecar_within_the_grace_period(
    pod: HostPod, remote: BareRemote, opencode_bin: str
) -> None:
    script = [*edit_script()[:2], Turn(text="Thinking about the tests...", hold=True)]
    with pod.pusher() as pusher, ScriptedModel(script) as model:
        running = pod.runner(opencode_bin, model, AGENTIC_GRACE_SECONDS="20")
        model.recorded.wait_for(3)
        running.send(signal.SIGTERM)
        run = running.finish(timeout=60)
        assert pusher.stop() == 0  # the kubelet stops the sidecar after the agent's container
    assert run.result is not None, run.stdout[-3000:]
    assert (run.result.status, run.exit_code, run.result.pushed) == ("cancelled", 130, True), run.stdout[-3000:]
    assert remote.sha(TASK_BRANCH) == run.result.head_sha
    assert remote.log(TASK_BRANCH)[0].startswith("WIP T001: ")
    assert remote.show(TASK_BRANCH, "README.md") == "hello agent\n"
