"""The pod's git side on the host, attacked: `git-clone` and `git-push` as real processes under uid
1001 with the token readable only by that uid, the agent's side under uid 1000, a real git remote
over smart HTTP that wants the token. Each test is an attack (or the honest path) and asserts on what
the remote holds afterwards, what the pusher answered, and that the token was never seen."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_server.runner import gitrepo
from mcp_server.runner.settings import Settings
from tests.support.git_remotes import BASE_BRANCH, BareRemote
from tests.support.git_side import (
    AGENT_UID,
    GIT_UID,
    TASK_BRANCH,
    TOKEN,
    USERNAME,
    HostPod,
    ServedPod,
    served_pod,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def served() -> Iterator[ServedPod]:
    with served_pod("agentic-git-side-") as served:
        yield served


@pytest.fixture
def root(served: ServedPod) -> Path:
    return served.root


@pytest.fixture
def remote(served: ServedPod) -> BareRemote:
    return served.remote


@pytest.fixture
def pod(served: ServedPod) -> HostPod:
    return served.pod


@pytest.fixture
def cloned(pod: HostPod) -> HostPod:
    proc = pod.clone()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pod.adopt()
    return pod


def no_token_anywhere(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text


def files_containing(root: Path, needle: str) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle.encode() in path.read_bytes():
                    found.append(str(path))
            except OSError:
                pass
    return found


# -- git-clone -----------------------------------------------------------------------------------


def test_git_clone_checks_out_the_task_branch_and_leaves_no_credential(pod: HostPod, remote: BareRemote) -> None:
    proc = pod.clone()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((pod.workspace / ".agentic" / "clone.json").read_text())
    assert record == {"checkout": str(pod.checkout), "base_sha": remote.sha(BASE_BRANCH), "remote_task_sha": None,
                      "branch": TASK_BRANCH}
    assert pod.checkout.stat().st_uid == GIT_UID
    # nothing of the credential in the checkout: not in any file, not in its config
    assert files_containing(pod.workspace, TOKEN) == []
    config = (pod.checkout / ".git" / "config").read_text()
    assert "credential" not in config and USERNAME + "@" not in config
    assert f"url = {pod.url}\n" in config
    no_token_anywhere(proc.stdout, proc.stderr)
    # the agent (uid 1000) makes it its own and works in it; it cannot push by itself
    pod.adopt()
    assert pod.checkout.stat().st_uid == AGENT_UID and (pod.checkout / ".git").stat().st_uid == AGENT_UID
    assert pod.agent_git("rev-parse", "--abbrev-ref", "HEAD").strip() == TASK_BRANCH
    pod.commit_file("README.md", "hello agent\n")
    push = pod.agent("git", "push", "origin", f"HEAD:refs/heads/{TASK_BRANCH}", check=False)
    assert push.returncode != 0
    assert TASK_BRANCH not in remote.branches()


def test_git_clone_continues_an_existing_task_branch(pod: HostPod, remote: BareRemote, root: Path) -> None:
    from tests.support.git_remotes import git

    work = root / "other"
    git("clone", "-q", "--branch", BASE_BRANCH, remote.url, str(work))
    (work / "notes.md").write_text("earlier run\n")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "earlier", cwd=work)
    git("push", "-q", remote.url, f"HEAD:refs/heads/{TASK_BRANCH}", cwd=work)
    proc = pod.clone()
    assert proc.returncode == 0, proc.stderr
    record = json.loads((pod.workspace / ".agentic" / "clone.json").read_text())
    assert record["remote_task_sha"] == remote.sha(TASK_BRANCH)
    assert (pod.checkout / "notes.md").read_text() == "earlier run\n"


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ('[{"host": "github.com", "insecure": false}]', "the host 127.0.0.1 is not one of the configured repo hosts"),
        ('[{"host": "127.0.0.1", "insecure": false}]', "http:// is not allowed for the host 127.0.0.1"),
    ],
)
def test_git_clone_refuses_a_host_the_rules_do_not_allow(pod: HostPod, rules: str, message: str) -> None:
    proc = pod.clone(AGENTIC_REPO_HOSTS=rules)
    assert proc.returncode == 1
    assert f"invalid repo: {message}" in proc.stdout
    assert list(pod.workspace.iterdir()) == []  # nothing cloned
    result = json.loads((pod.root / "git-home" / "termination-log").read_text())
    assert result["status"] == "failed" and message in result["error"]


@pytest.mark.parametrize("kind", ["file-url", "path", "ext"])
def test_git_clone_refuses_local_paths_and_remote_helpers_in_a_cluster(
    pod: HostPod, remote: BareRemote, kind: str
) -> None:
    repo, message = {
        "file-url": (remote.url, "invalid repo: file:// names a path on the machine, which a pod cannot clone"),
        "path": (str(remote.path), "invalid repo:"),  # the task context's own check refuses it first
        "ext": ("ext::sh -c touch% /tmp/pwned", "invalid repo:"),
    }[kind]
    pod.write_context(repo=repo)
    proc = pod.clone()
    assert proc.returncode == 1 and message in proc.stdout
    assert list(pod.workspace.iterdir()) == []
    assert not Path("/tmp/pwned").exists()


# -- git-push: the honest path ---------------------------------------------------------------------


def test_git_push_pushes_checkpoints_and_the_final_work_to_the_task_branch(cloned: HostPod, remote: BareRemote) -> None:
    pod = cloned
    base, main = remote.sha(BASE_BRANCH), remote.sha("main")
    with pod.pusher() as pusher:
        first = pod.commit_file("README.md", "hello agent\n", "WIP T001: checkpoint")
        answer = pod.submit("checkpoint", exclude=[base])
        assert answer == {"n": 1, "pushed": True, "ref": f"refs/heads/{TASK_BRANCH}", "sha": first,
                          "fallback_ref": None, "error": None, "refused": []}
        assert remote.sha(TASK_BRANCH) == first
        final = pod.commit_file("src/new.py", "x = 1\n", "T001: Change the greeting")
        answer = pod.submit("final", exclude=[base, first])
        assert (answer["n"], answer["pushed"], answer["sha"]) == (2, True, final)
        assert pusher.stop() == 0
    assert remote.sha(TASK_BRANCH) == final and remote.log(TASK_BRANCH)[:2] == ["T001: Change the greeting",
                                                                                  "WIP T001: checkpoint"]
    assert remote.sha(BASE_BRANCH) == base and remote.sha("main") == main
    assert sorted(remote.branches()) == sorted([BASE_BRANCH, "main", TASK_BRANCH])
    no_token_anywhere(pusher.log, *(p.read_text() for p in pod.queue.iterdir() if p.suffix == ".json"))
    # the bundles are gone from the queue once taken
    assert sorted(p.name for p in pod.queue.iterdir()) == ["1.request.json", "1.response.json",
                                                           "2.request.json", "2.response.json"]


# -- git-push: attacks -----------------------------------------------------------------------------


def test_a_request_cannot_choose_the_ref_force_or_extra_refs(cloned: HostPod, remote: BareRemote) -> None:
    """The request names `ref: main` and `force`, the bundle carries main and another branch too: only
    the task branch is pushed, to the commit requested."""
    pod = cloned
    base, main = remote.sha(BASE_BRANCH), remote.sha("main")
    sha = pod.commit_file("README.md", "hello agent\n")
    pod.agent_git("branch", "-f", "main", "HEAD")
    pod.agent_git("branch", "evil", "HEAD")
    with pod.pusher():
        answer = pod.submit(revs=["HEAD", "main", "evil"], extra={"ref": "refs/heads/main", "force": True,
                                                                   "url": "http://127.0.0.1:9/evil.git"})
    assert answer["pushed"] is True and answer["ref"] == f"refs/heads/{TASK_BRANCH}"
    assert remote.sha(TASK_BRANCH) == sha
    assert remote.sha("main") == main and remote.sha(BASE_BRANCH) == base and "evil" not in remote.branches()


def test_a_rewritten_history_is_never_force_pushed_it_lands_on_a_fallback_branch(
    cloned: HostPod, remote: BareRemote
) -> None:
    pod = cloned
    base = remote.sha(BASE_BRANCH)
    first = pod.commit_file("README.md", "hello agent\n")
    with pod.pusher():
        assert pod.submit(exclude=[base])["pushed"] is True
        # the agent rewrites the branch (amend) and asks for it: a force-push would lose `first`
        pod.agent_git("commit", "-q", "--amend", "-m", "rewritten")
        rewritten = pod.agent_git("rev-parse", "HEAD").strip()
        answer = pod.submit(exclude=[base])
    assert answer["pushed"] is False and answer["sha"] == rewritten
    assert answer["fallback_ref"] == f"refs/heads/{TASK_BRANCH}-wip-2"
    assert "the runner never force-pushes" in answer["error"] and f"{TASK_BRANCH}-wip-2" in answer["error"]
    assert remote.sha(TASK_BRANCH) == first  # untouched
    assert remote.sha(f"{TASK_BRANCH}-wip-2") == rewritten  # the work is kept


def test_changes_to_workflows_are_refused_with_the_paths(cloned: HostPod, remote: BareRemote) -> None:
    pod = cloned
    base = remote.sha(BASE_BRANCH)
    pod.commit_file(".github/workflows/ci.yml", "on: push\njobs: {}\n", "add a workflow")
    pod.agent_git("rm", "-q", ".github/workflows/ci.yml")
    pod.agent_git("commit", "-q", "-m", "and hide it again")  # the net diff is empty; the history is not
    pod.commit_file("README.md", "hello agent\n")
    with pod.pusher():
        answer = pod.submit(exclude=[base])
    assert answer["pushed"] is False and answer["refused"] == [".github/workflows/ci.yml"]
    assert answer["error"].startswith("refused: the work changes protected paths (.github/workflows/ci.yml)")
    assert TASK_BRANCH not in remote.branches()


def test_the_environment_protects_more_paths(cloned: HostPod, remote: BareRemote) -> None:
    pod = cloned
    pod.commit_file("CODEOWNERS", "* @mallory\n")
    pod.commit_file("deploy/prod.yaml", "replicas: 0\n")
    with pod.pusher(AGENTIC_PROTECTED_PATHS='[".github/workflows/", "CODEOWNERS", "deploy/*.yaml"]'):
        answer = pod.submit(exclude=[remote.sha(BASE_BRANCH) or ""])
    assert answer["refused"] == ["CODEOWNERS", "deploy/prod.yaml"] and answer["pushed"] is False
    assert TASK_BRANCH not in remote.branches()


def test_hooks_and_config_planted_in_the_checkout_never_run_and_never_redirect(
    cloned: HostPod, remote: BareRemote, root: Path
) -> None:
    """pre-push/reference-transaction hooks, core.hooksPath, core.fsmonitor and url.insteadOf in the
    checkout's config and in the agent's ~/.gitconfig: the pusher takes only the bundle's objects."""
    pod = cloned
    drop = root / "drop"
    drop.mkdir()
    drop.chmod(0o1777)  # a hook under any uid could write here
    marker = drop / "hook-ran"
    evil = root / "evil.git"
    subprocess.run(["git", "init", "-q", "--bare", str(evil)], check=True)
    evil.chmod(0o777)
    hook = f"#!/bin/sh\nenv >> {marker}\ncat /proc/$PPID/environ >> {marker} 2>/dev/null\nexit 0\n"
    hooks = pod.checkout / ".git" / "hooks"
    for name in ("pre-push", "reference-transaction", "post-checkout", "pre-commit", "fsmonitor"):
        pod.agent("sh", "-c", f"printf '%s' '{hook}' > {hooks / name} && chmod +x {hooks / name}")
    pod.agent_git("config", "core.hooksPath", str(hooks))
    pod.agent_git("config", "core.fsmonitor", str(hooks / "fsmonitor"))
    pod.agent_git("config", f"url.file://{evil}.insteadOf", pod.url)
    pod.agent_git("config", "--global", f"url.file://{evil}.insteadOf", pod.url)
    pod.agent_git("config", "--global", "core.hooksPath", str(hooks))
    sha = pod.commit_file("README.md", "hello agent\n")
    assert marker.exists()  # the hooks work: the agent's own commit ran them (the agent's business)
    marker.unlink()
    with pod.pusher():
        answer = pod.submit(exclude=[remote.sha(BASE_BRANCH) or ""])
    assert answer["pushed"] is True
    assert remote.sha(TASK_BRANCH) == sha  # the real remote got it
    refs = subprocess.run(["git", "--git-dir", str(evil), "for-each-ref"], capture_output=True, text=True).stdout
    assert refs == ""  # the insteadOf target got nothing
    assert not marker.exists()  # no hook of the agent's ran on the git side


def test_a_symlinked_bundle_or_request_is_refused_and_the_token_never_read(cloned: HostPod, remote: BareRemote) -> None:
    pod = cloned
    token_file = pod.creds / "token"
    pod.commit_file("README.md", "hello agent\n")
    sha = pod.agent_git("rev-parse", "HEAD").strip()
    # the bundle of request 1 is a symlink to the git container's token
    pod.agent("ln", "-s", str(token_file), str(pod.queue / "1.bundle"))
    pod.agent("sh", "-c", f"echo '{{\"n\": 1, \"kind\": \"final\", \"sha\": \"{sha}\"}}' > {pod.queue}/1.request.json")
    # request 2 itself is a symlink to the token
    pod.agent("ln", "-s", str(token_file), str(pod.queue / "2.request.json"))
    with pod.pusher() as pusher:
        deadline = time.monotonic() + 60
        while not all((pod.queue / f"{n}.response.json").exists() for n in (1, 2)) and time.monotonic() < deadline:
            time.sleep(0.2)
        answers = [json.loads((pod.queue / f"{n}.response.json").read_text()) for n in (1, 2)]
    assert answers[0]["pushed"] is False and "1.bundle: cannot be opened" in answers[0]["error"]
    assert answers[1]["pushed"] is False and "2.request.json: cannot be opened" in answers[1]["error"]
    no_token_anywhere(pusher.log, *(json.dumps(a) for a in answers))
    assert TASK_BRANCH not in remote.branches()
    # and the agent's uid cannot read the credential itself
    assert pod.agent("cat", str(token_file), check=False).returncode != 0


def test_the_agent_cannot_read_the_pushers_environment_or_files(cloned: HostPod) -> None:
    pod = cloned
    with pod.pusher() as pusher:
        time.sleep(1.0)
        pid = pusher.proc.pid
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for target in [str(pid), *children]:
            for what in ("environ", "cmdline", "mem", "root/"):
                probe = pod.agent("sh", "-c", f"cat /proc/{target}/{what} 2>&1 | head -c 2000; "
                                  f"ls /proc/{target}/{what}", check=False)
                no_token_anywhere(probe.stdout, probe.stderr)
        probe = pod.agent("sh", "-c", f"grep -r {TOKEN} {pod.root} /tmp 2>/dev/null", check=False)
        assert probe.stdout == ""


def test_the_token_helper_answers_only_for_the_repositorys_host(pod: HostPod) -> None:
    """What the pusher configures: `git credential fill` for the task's host gets the token, for any
    other host (another port, another scheme, another name) nothing."""
    from mcp_server.repohosts import HostRule, check_repo_url
    from mcp_server.runner.gitconfig import isolated_environ
    from mcp_server.runner.redact import Redactor

    settings = Settings.from_environ(pod.git_env())
    repo = check_repo_url(pod.url, (HostRule("127.0.0.1", insecure=True),), cluster=True)
    auth = gitrepo.prepare_auth(settings, repo)
    env = {**isolated_environ({"PATH": "/usr/bin:/bin"}, pod.root / "git-home"), **auth.env}
    git = gitrepo.Git(pod.root, env, auth, Redactor(), ("a", "b"))

    def fill(url: str) -> str:
        proc = subprocess.run(["git", "credential", "fill"], input=f"url={url}\n\n", env=git.env, capture_output=True,
                              text=True, timeout=30)
        return proc.stdout

    assert f"password={TOKEN}" in fill(pod.url)
    port = repo.port
    for other in (f"http://127.0.0.2:{port}/project.git", f"http://127.0.0.1:{(port or 0) + 1}/project.git",
                  f"https://127.0.0.1:{port}/project.git", "https://github.com/org/repo.git",
                  f"http://evil.example/127.0.0.1:{port}/project.git"):
        assert TOKEN not in fill(other), other


def test_git_push_refuses_everything_when_the_rules_refuse_the_repo(cloned: HostPod, remote: BareRemote) -> None:
    pod = cloned
    pod.commit_file("README.md", "hello agent\n")
    with pod.pusher(AGENTIC_REPO_HOSTS='[{"host": "github.com", "insecure": false}]') as pusher:
        answer = pod.submit(exclude=[remote.sha(BASE_BRANCH) or ""])
        assert pusher.stop() == 1
    assert answer["pushed"] is False
    assert "git-push cannot push: invalid repo: the host 127.0.0.1 is not one of the configured repo hosts" in (
        answer["error"])
    assert TASK_BRANCH not in remote.branches()


def test_sigterm_lets_the_pusher_answer_what_is_pending_first(cloned: HostPod, remote: BareRemote) -> None:
    """The kubelet stops the sidecar after the agent's container: a request that came in just before
    SIGTERM is still pushed and answered, then git-push ends with 0."""
    import signal

    pod = cloned
    sha = pod.commit_file("README.md", "hello agent\n")
    base = remote.sha(BASE_BRANCH) or ""
    pod.agent("git", "bundle", "create", "-q", str(pod.queue / "1.bundle"), "HEAD", f"^{base}")
    with pod.pusher() as pusher:
        deadline = time.monotonic() + 60
        while "serving pushes" not in pusher.log and time.monotonic() < deadline:
            time.sleep(0.1)
        pod.agent("sh", "-c", f"chmod 644 {pod.queue}/1.bundle && echo '{{\"n\": 1, \"kind\": \"final\", "
                  f"\"sha\": \"{sha}\", \"bundle\": \"1.bundle\"}}' > {pod.queue}/1.request.json")
        pusher.proc.send_signal(signal.SIGTERM)  # at once: the request is pending (polled every 0.2 s)
        assert pusher.proc.wait(timeout=60) == 0
    answer = json.loads((pod.queue / "1.response.json").read_text())
    assert (answer["pushed"], answer["sha"]) == (True, sha)
    assert remote.sha(TASK_BRANCH) == sha
