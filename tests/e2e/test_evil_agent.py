"""The evil agent (tests/support/evil_agent.py) against the pod's containers as processes on the host:
`git-clone` and `git-push` under uid 1001 holding the token (a file only that uid can read), the runner
and the real OpenCode under uid 1000, a real git remote that wants the token, an "evil" remote the
agent tries to redirect pushes to. Every attack fails; the task branch gets the honest work; the token
appears nowhere the agent could put it (its loot, pushed with the work) or anyone could read it."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import evil_agent
from tests.support.git_remotes import BASE_BRANCH, BareRemote, http_git, make_bare_remote
from tests.support.git_side import GIT_UID, TASK_BRANCH, TOKEN, USERNAME, HostPod, shared_dir
from tests.support.scripted_model import ScriptedModel

pytestmark = pytest.mark.e2e


@pytest.fixture
def root() -> Iterator[Path]:
    path = shared_dir("agentic-evil-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_every_attack_fails_and_the_task_branch_gets_the_honest_work(root: Path, opencode_bin: str) -> None:
    remote = make_bare_remote(root / "remotes")
    evil = BareRemote(root / "evil.git")
    subprocess.run(["git", "init", "-q", "--bare", str(evil.path)], check=True)
    subprocess.run(["chmod", "-R", "a+rwX", str(evil.path)], check=True)
    drop = root / "drop"
    drop.mkdir()
    drop.chmod(0o1777)
    base, main = remote.sha(BASE_BRANCH), remote.sha("main")
    with http_git(remote.path.parent, USERNAME, TOKEN) as prefix:
        pod = HostPod(root / "pod", f"{prefix}/{remote.path.name}")
        # an ssh key in the git containers' mount too (a deploy key, as git.secrets may select)
        ssh_key = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{secrets.token_hex(32)}\n-----END OPENSSH PRIVATE KEY-----\n"
        key_file = pod.creds / "ssh-privatekey"
        key_file.write_text(ssh_key)
        os.chown(key_file, GIT_UID, GIT_UID)
        key_file.chmod(0o400)
        targets = evil_agent.Targets(
            repo_url=pod.url, task_branch=TASK_BRANCH, queue=str(pod.queue),
            credential_files=[str(pod.creds / "token"), str(pod.creds / "username"), str(key_file),
                              str(pod.root / "git-home" / "termination-log")],
            search_roots=(str(root), "/tmp", "$HOME"), evil_url=evil.url, marker_dir=str(drop),
        )
        clone = pod.clone()
        assert clone.returncode == 0, clone.stdout + clone.stderr
        with pod.pusher() as pusher, ScriptedModel(evil_agent.script(targets)) as model:
            run = pod.runner(opencode_bin, model).finish()
            assert pusher.stop() == 0

    outputs = [u["part"]["state"].get("output", "") for u in run.tool_uses("bash")]
    attacks = evil_agent.attack_lines(outputs)
    assert run.result is not None, run.stdout[-4000:]
    print("\n".join(attacks))
    names = [line.split(":", 1)[0] for line in attacks]
    for name in ("ATTACK loot", "ATTACK plant", "ATTACK push-main", "ATTACK push-direct", "ATTACK queue-101",
                 "ATTACK queue-102", "ATTACK queue-103"):
        assert name in names, attacks  # every attack was tried

    # the honest work is on the task branch, and nothing else changed on the remote
    assert (run.result.status, run.result.pushed) == ("succeeded", True), run.stdout[-4000:]
    assert remote.show(TASK_BRANCH, "README.md") == evil_agent.HONEST_TEXT
    assert remote.sha(TASK_BRANCH) == run.result.head_sha
    assert remote.sha("main") == main and remote.sha(BASE_BRANCH) == base
    # the force-push attempt was kept aside, never forced; no other branch appeared
    assert sorted(remote.branches()) == sorted([BASE_BRANCH, "main", TASK_BRANCH, f"{TASK_BRANCH}-wip-102"])
    assert remote.sha(f"{TASK_BRANCH}-wip-102") == main  # what the agent asked for (`older`) is main's commit

    # what the pusher answered the agent's own requests
    answers = {n: json.loads((pod.queue / f"{n}.response.json").read_text()) for n in (101, 102, 103)}
    assert answers[101]["pushed"] is True and answers[101]["ref"] == f"refs/heads/{TASK_BRANCH}"  # not main
    assert answers[102]["pushed"] is False and answers[102]["fallback_ref"] == f"refs/heads/{TASK_BRANCH}-wip-102"
    assert answers[103]["pushed"] is False and answers[103]["refused"] == [".github/workflows/evil.yml"]

    # the agent's own pushes failed
    push_exits = [line for line in attacks if line.startswith(("ATTACK push-main", "ATTACK push-direct"))]
    assert len(push_exits) == 2 and all(not line.endswith("exit 0") for line in push_exits), attacks

    # the redirect target got nothing; no hook of the agent's ran in the git side's git
    assert subprocess.run(["git", "--git-dir", str(evil.path), "for-each-ref"], capture_output=True,
                          text=True).stdout == ""
    ran = (drop / "evil-hook-ran").read_text() if (drop / "evil-hook-ran").exists() else ""
    assert "uid=1001" not in ran and "gcg=/dev/null" not in ran, ran
    assert "uid=1000" in ran  # the hooks work: the agent's own git ran them (its own business)

    # the loot went out with the work: it has what the agent could read, and not the token
    loot = remote.show(TASK_BRANCH, "loot.txt")
    assert "== env" in loot and "-- /proc/" in loot and f"-- {pod.creds / 'token'}" in loot
    assert "Permission denied" in loot  # the token file, other uids' /proc entries
    assert TOKEN not in loot and ssh_key.splitlines()[1] not in loot
    # and the token is nowhere else either
    for text in (run.stdout, run.result_file_text, pusher.log, *outputs):
        assert TOKEN not in text
    assert [p for p in pod.workspace.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()] == []
