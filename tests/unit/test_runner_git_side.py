"""Pure parts of the git side: the push queue's file format and its refusals, protected paths, the
isolated git config, the push target's host rules, the settings of the git containers, and the local
agent's allowlisted environment and sandbox."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mcp_server.backends.local_env import agent_environment
from mcp_server.backends.local_sandbox import sandbox_command, sandbox_mode
from mcp_server.errors import ConfigError
from mcp_server.repohosts import ParsedRepo
from mcp_server.runner.gitconfig import config_env, credential_host, isolated_environ, merge_config_env, repo_config
from mcp_server.runner.pusher import check_target, is_protected
from mcp_server.runner.pushqueue import (
    AgentQueue,
    PusherQueue,
    PushRequest,
    PushResponse,
    QueueError,
    copy_bundle,
    parse_request,
    write_atomic,
)
from mcp_server.runner.settings import Settings

SHA = "0123456789abcdef0123456789abcdef01234567"


# -- the queue -------------------------------------------------------------------------------------


def test_a_request_and_its_answer_go_through_the_queue(tmp_path: Path) -> None:
    agent, pusher = AgentQueue(tmp_path), PusherQueue(tmp_path)
    assert agent.next_n() == 1
    agent.submit(PushRequest(1, "checkpoint", SHA))
    assert list(pusher.pending()) == [1] and agent.next_n() == 2
    assert pusher.read(1) == PushRequest(1, "checkpoint", SHA)
    pusher.respond(PushResponse(1, True, "refs/heads/b", SHA))
    assert list(pusher.pending()) == []
    assert agent.wait(1, timeout=1) == PushResponse(1, True, "refs/heads/b", SHA)
    assert agent.wait(2, timeout=0.2) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.request.json", "1.response.json"]  # no temp left


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "request 3: not a JSON object"),
        ({"n": 4, "kind": "final", "sha": SHA}, "request 3: invalid n: it is not 3"),
        ({"n": True, "kind": "final", "sha": SHA}, "request 3: invalid n"),
        ({"n": 3, "kind": "force", "sha": SHA}, "request 3: invalid kind; allowed: checkpoint or final"),
        ({"n": 3, "kind": "final", "sha": "HEAD"}, "request 3: invalid sha; allowed: a full commit id"),
        ({"n": 3, "kind": "final", "sha": SHA, "bundle": "../../etc/agentic-sdlc/git/token"},
         "request 3: invalid bundle; allowed: '3.bundle' in the queue directory"),
    ],
)
def test_bad_requests_are_refused_by_field(data: object, message: str) -> None:
    with pytest.raises(QueueError) as exc:
        parse_request(3, data)
    assert str(exc.value).startswith(message)


def test_keys_the_protocol_does_not_have_choose_nothing() -> None:
    request = parse_request(1, {"n": 1, "kind": "final", "sha": SHA, "ref": "refs/heads/main", "force": True,
                                "url": "https://evil.example/x.git"})
    assert request == PushRequest(1, "final", SHA)


def test_the_queue_follows_no_symlink_and_takes_only_regular_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("glpat-secret-value")
    queue = tmp_path / "q"
    queue.mkdir()
    (queue / "1.request.json").symlink_to(secret)
    (queue / "2.bundle").symlink_to(secret)
    os.mkfifo(queue / "3.bundle")
    pusher = PusherQueue(queue)
    with pytest.raises(QueueError, match="1.request.json: cannot be opened"):
        pusher.read(1)
    for n, why in ((2, "cannot be opened"), (3, "not a regular file")):
        with pytest.raises(QueueError, match=f"{n}.bundle: {why}"):
            copy_bundle(queue, n, tmp_path / f"copy-{n}")
        assert not (tmp_path / f"copy-{n}").exists()


def test_a_planted_temporary_file_is_not_written_through(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("keep")
    (tmp_path / ".1.response.json.tmp").symlink_to(target)
    write_atomic(tmp_path / "1.response.json", b"{}")
    assert target.read_text() == "keep" and (tmp_path / "1.response.json").read_text() == "{}"


# -- protected paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "protected"),
    [
        (".github/workflows/ci.yml", True),
        (".GitHub/Workflows/ci.yml", True),
        (".github/workflows/sub/x.yaml", True),
        (".github/dependabot.yml", False),
        ("docs/.github/workflows/x.yml", False),
        ("CODEOWNERS", True),
        ("deploy/prod.yaml", True),
        ("deploy/sub/prod.yaml", True),  # fnmatch's * crosses '/'
        ("src/app.py", False),
    ],
)
def test_protected_paths(path: str, protected: bool) -> None:
    assert is_protected(path, (".github/workflows/", "CODEOWNERS", "deploy/*.yaml")) is protected


def test_protected_paths_come_from_the_environment() -> None:
    assert Settings.from_environ({}).protected_paths == (".github/workflows/",)
    assert Settings.from_environ({"AGENTIC_PROTECTED_PATHS": '["a/", "b.txt"]'}).protected_paths == ("a/", "b.txt")
    assert Settings.from_environ({"AGENTIC_PROTECTED_PATHS": "[]"}).protected_paths == ()
    for bad in ("a/,b", '["/etc/passwd"]', '[""]', "{}"):
        with pytest.raises(ConfigError, match="invalid AGENTIC_PROTECTED_PATHS: it is not a JSON list"):
            Settings.from_environ({"AGENTIC_PROTECTED_PATHS": bad})


# -- credentials and config -------------------------------------------------------------------------


def test_the_token_comes_from_the_secrets_files(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("glpat-from-file-123\n")
    (tmp_path / "username").write_text("bot\n")
    s = Settings.from_environ({"AGENTIC_GIT_AUTH": "token", "AGENTIC_GIT_AUTH_DIR": str(tmp_path)})
    assert (s.git_token, s.git_username) == ("glpat-from-file-123", "bot")
    with pytest.raises(ConfigError) as exc:
        Settings.from_environ({"AGENTIC_GIT_AUTH": "token", "AGENTIC_GIT_AUTH_DIR": str(tmp_path / "none")})
    assert "invalid AGENTIC_GIT_TOKEN: it is empty but AGENTIC_GIT_AUTH=token" in str(exc.value)


def test_the_git_side_config_is_isolated_and_scoped_to_the_host() -> None:
    repo = ParsedRepo("https", "git.example.com", 8443, "/org/repo.git")
    pairs = dict(repo_config(repo, "!helper"))
    assert pairs["core.hooksPath"] == "/dev/null" and pairs["core.fsmonitor"] == "false"
    assert pairs["protocol.allow"] == "never" and pairs["protocol.https.allow"] == "always"
    assert "protocol.file.allow" not in pairs and "protocol.ext.allow" not in pairs
    assert pairs["http.followRedirects"] == "false" and pairs["credential.helper"] == ""
    assert pairs["credential.https://git.example.com:8443.helper"] == "!helper"
    assert credential_host(repo) == "git.example.com:8443"
    assert dict(repo_config(ParsedRepo("ssh", "h", None, "/r"), "!helper")).get("credential.ssh://h.helper") is None
    env = isolated_environ({"PATH": "/bin", "HOME": "/home/dev", "SSH_AUTH_SOCK": "/s", "GIT_DIR": "/x",
                            "XDG_CONFIG_HOME": "/home/dev/.config", "GITHUB_TOKEN": "t"}, Path("/p"))
    assert env["HOME"] == "/p" and env["GIT_CONFIG_GLOBAL"] == "/dev/null" and env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert not {"SSH_AUTH_SOCK", "GIT_DIR", "GITHUB_TOKEN"} & set(env)
    merged = merge_config_env(config_env([("a.b", "1")]), config_env([("c.d", "2")]))
    assert merged["GIT_CONFIG_COUNT"] == "2" and merged["GIT_CONFIG_KEY_1"] == "c.d"


def test_the_push_target_obeys_the_host_rules() -> None:
    rules = json.dumps([{"host": "git.example.com", "insecure": False}])
    target = check_target("https://git.example.com/o/r.git", "agentic/b/T1", "b", rules, cluster=True)
    assert (target.ref, target.fallback_ref(3)) == ("refs/heads/agentic/b/T1", "refs/heads/agentic/b/T1-wip-3")
    for url, problem in [("https://evil.example/o/r.git", "the host evil.example is not one of the configured"),
                         ("http://git.example.com/o/r.git", "http:// is not allowed for the host git.example.com"),
                         ("file:///srv/r.git", "file:// names a path on the machine")]:
        with pytest.raises(ValueError, match=problem):
            check_target(url, "agentic/b/T1", "b", rules, cluster=True)
    # no rules configured (no chart): the URL's own host, as the server gave it; never a helper
    assert check_target("http://127.0.0.1:8080/r.git", "x-T1", "b", None, cluster=True).repo.host == "127.0.0.1"
    assert check_target("git@git.example.com:o/r.git", "x-T1", "b", None, cluster=True).repo.scheme == "ssh"
    with pytest.raises(ValueError, match="remote helper"):
        check_target("ext::sh%20-c%20id", "x-T1", "b", None, cluster=False)


# -- the local agent ----------------------------------------------------------------------------------


def test_the_local_agent_gets_an_allowlisted_environment() -> None:
    developer = {
        "PATH": "/usr/bin", "HOME": "/home/dev", "LANG": "C.UTF-8", "LC_ALL": "C", "TERM": "xterm",
        "XDG_DATA_HOME": "/home/dev/.local/share", "OPENCODE_DB": "/s/db", "AGENTIC_OPENCODE_MODEL": "m",
        "ANTHROPIC_API_KEY": "sk-ant", "MY_LLM": "k", "AGENTIC_LLM_ENV": "MY_LLM",
        "SSH_AUTH_SOCK": "/run/user/1000/ssh", "KUBECONFIG": "/home/dev/.kube/prod", "AWS_ACCESS_KEY_ID": "A",
        "AWS_SECRET_ACCESS_KEY": "S", "GOOGLE_APPLICATION_CREDENTIALS": "/k.json", "GITHUB_TOKEN": "ghp_x",
        "GH_TOKEN": "ghp_y", "NPM_TOKEN": "n", "AGENTIC_GIT_TOKEN": "g", "GIT_ASKPASS": "/a", "GIT_SSH_COMMAND": "ssh",
        "DOCKER_AUTH_CONFIG": "{}", "VAULT_TOKEN": "v", "DATABASE_PASSWORD": "p", "SOME_PRIVATE_KEY": "k",
        "AZURE_CLIENT_SECRET": "s",
    }
    assert agent_environment(developer) == {
        "PATH": "/usr/bin", "HOME": "/home/dev", "LANG": "C.UTF-8", "LC_ALL": "C", "TERM": "xterm",
        "XDG_DATA_HOME": "/home/dev/.local/share", "OPENCODE_DB": "/s/db", "AGENTIC_OPENCODE_MODEL": "m",
        "ANTHROPIC_API_KEY": "sk-ant", "MY_LLM": "k", "AGENTIC_LLM_ENV": "MY_LLM",
    }


def test_the_sandbox_hides_credentials_and_keeps_the_repository_config_read_only(tmp_path: Path) -> None:
    import subprocess

    home = tmp_path / "home"
    for d in (".ssh", ".kube", ".aws"):
        (home / d).mkdir(parents=True)
    (home / ".netrc").write_text("machine x password y\n")
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    task = tmp_path / "state"
    task.mkdir()
    for name in ("context.json", "process.json", "spec.json"):
        (task / name).write_text("{}")
    env = {"HOME": str(home), "AGENTIC_WORKTREE_REPO": str(repo), "AGENTIC_LOCAL_SANDBOX": "bwrap",
           "SSH_AUTH_SOCK": str(home / ".agent" / "sock")}
    (home / ".agent").mkdir()
    args = sandbox_command(env, task)
    assert args[:3] == ["bwrap", "--ro-bind", "/"] and "--unshare-pid" in args and args[-1] == "--"
    pairs = list(zip(args, args[1:], strict=False))
    assert ("--bind", str(task)) in pairs and ("--bind", str(repo / ".git")) in pairs
    for name in ("config", "hooks"):
        assert ("--ro-bind", str(repo / ".git" / name)) in pairs
    for name in ("context.json", "process.json", "spec.json"):  # what the server acts on
        assert ("--ro-bind", str(task / name)) in pairs
    for hidden in (".ssh", ".kube", ".aws"):
        assert ("--tmpfs", str(home / hidden)) in pairs
    assert ("--ro-bind", "/dev/null") in pairs and str(home / ".netrc") in args
    assert ("--tmpfs", str(home / ".agent")) in pairs  # the ssh agent's socket directory
    assert ("--tmpfs", "/tmp") in pairs and str(tmp_path) not in args  # the rest of /tmp: a fresh one
    assert sandbox_command({**env, "AGENTIC_LOCAL_SANDBOX": "none"}, task) == []
    with pytest.raises(ConfigError,
                       match="invalid AGENTIC_LOCAL_SANDBOX: 'jail'; allowed: auto, bwrap, none or podman"):
        sandbox_mode({"AGENTIC_LOCAL_SANDBOX": "jail"})
