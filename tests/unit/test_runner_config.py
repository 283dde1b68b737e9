"""The runner's inputs: environment variables and the task context. Each refusal names the field
and what is allowed, and never echoes a value that may be a secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_server.errors import ConfigError
from mcp_server.runner.context import load_context, partial_ids
from mcp_server.runner.settings import Settings

CONTEXT = {
    "task_id": "T012",
    "description": "Implement the parser in src/parser.py",
    "repo": "https://git.example.com/org/repo.git",
    "base_branch": "001-feature",
    "task_branch": "agentic/001-feature/T012",
    "environment": "dev",
    "model": None,
    "agent": None,
    "feature_dir": "specs/001-feature",
    "context_files": [{"path": "specs/001-feature/plan.md", "content": "..."}],
}


def write(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "context.json"
    path.write_text(json.dumps({**CONTEXT, **changes}))
    return path


def test_defaults_follow_the_contract() -> None:
    s = Settings.from_environ({})
    assert str(s.context_file) == "/etc/agentic-sdlc/task/context.json"
    assert str(s.workspace) == "/workspace" and str(s.result_file) == "/dev/termination-log"
    assert s.git_auth == "none" and str(s.ssh_dir) == "/etc/agentic-sdlc/git-ssh"
    assert str(s.known_hosts) == "/etc/agentic-sdlc/git-ssh/known_hosts"
    assert (s.author_name, s.author_email) == ("Agentic SDLC Agent", "agent@agentic-sdlc.local")
    assert (s.opencode_model, s.opencode_agent) == (None, "build")
    assert s.worktree_repo is None and s.clone_depth == 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"AGENTIC_GIT_AUTH": "password"},
            "invalid AGENTIC_GIT_AUTH: 'password' is not a git auth mode; allowed: ssh, token or none",
        ),
        ({"AGENTIC_GIT_AUTH": "token"}, "invalid AGENTIC_GIT_TOKEN: it is empty but AGENTIC_GIT_AUTH=token"),
        ({"AGENTIC_OPENCODE_CONFIG": "{nope"}, "invalid AGENTIC_OPENCODE_CONFIG: it is not JSON"),
        ({"AGENTIC_OPENCODE_CONFIG": "[1]"}, "invalid AGENTIC_OPENCODE_CONFIG: it is a JSON list"),
        (
            {"AGENTIC_GRACE_SECONDS": "soon"},
            "invalid AGENTIC_GRACE_SECONDS: 'soon' is not allowed; allowed: a number >= 1",
        ),
        (
            {"AGENTIC_PUSH_ATTEMPTS": "0"},
            "invalid AGENTIC_PUSH_ATTEMPTS: '0' is not allowed; allowed: an integer >= 1",
        ),
    ],
)
def test_bad_settings_are_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Settings.from_environ(env)
    assert str(exc.value).startswith(message)


def test_the_token_is_never_echoed() -> None:
    with pytest.raises(ConfigError) as exc:
        Settings.from_environ({"AGENTIC_GIT_AUTH": "tokn", "AGENTIC_GIT_TOKEN": "secret-value-123"})
    assert "secret-value-123" not in str(exc.value)


def test_a_good_context_loads(tmp_path: Path) -> None:
    ctx = load_context(write(tmp_path, deadline="2026-01-01T12:00:00Z", unknown_future_key=1))
    assert ctx.task_id == "T012" and ctx.deadline is not None and ctx.deadline.tzinfo is not None
    assert ctx.context_files[0].path == "specs/001-feature/plan.md"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task_branch": "001-feature"}, "invalid task_branch: it is the base branch"),
        (
            {"task_branch": "agentic/001-feature/other"},
            "invalid task_branch: it does not contain the task id",
        ),
        ({"task_id": "T 12"}, "invalid task_id: it contains characters that are not allowed"),
        ({"base_branch": "feat..x"}, "invalid base_branch: it is not a valid git branch name"),
        (
            {"repo": "https://user:s3cr3t-pw@git.example.com/r.git"},
            "invalid repo: it contains embedded credentials",
        ),
        (
            {"context_files": [{"path": "../etc/passwd", "content": ""}]},
            "invalid context_files: a path is absolute or leaves the repository",
        ),
        ({"deadline": "2026-01-01T12:00:00"}, "invalid deadline: it has no time zone"),
        ({"description": None}, "description: Input should be a valid string"),
    ],
)
def test_a_bad_context_is_refused_with_the_field(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_context(write(tmp_path, **changes))
    assert message in str(exc.value)
    assert "s3cr3t-pw" not in str(exc.value)


def test_unreadable_context(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"cannot read the task context .*missing.json \(AGENTIC_TASK_CONTEXT_FILE\)"
    ):
        load_context(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="is not usable"):
        load_context(tmp_path / "bad.json")


def test_partial_ids_of_a_broken_context(tmp_path: Path) -> None:
    assert partial_ids(write(tmp_path, task_branch="001-feature")) == ("T012", "001-feature", "001-feature")
    assert partial_ids(tmp_path / "missing.json") == ("", "", "")
