"""Pure parts of the runner: the prompt, stop classification, git failure classification, the
agent's environment and command."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mcp_server.errors import ConfigError
from mcp_server.runner.agent import opencode_command, opencode_env
from mcp_server.runner.context import RunnerContext
from mcp_server.runner.gitrepo import GitError, checkout_dir_name, classify
from mcp_server.runner.prompt import render_prompt
from mcp_server.runner.redact import Redactor
from mcp_server.runner.stop import StopControl, StopTriggers, classify_signal

CTX = RunnerContext(
    task_id="T012",
    description="Implement the parser",
    repo="https://git.example.com/org/repo.git",
    base_branch="001-feature",
    task_branch="agentic/001-feature/T012",
    environment="dev",
    feature_dir="specs/001-feature",
    context_files=[{"path": "specs/001-feature/plan.md", "content": "```py\nx = 1\n```"}],
)


def test_prompt_has_the_task_the_rules_and_the_context() -> None:
    prompt = render_prompt(CTX, Path("/workspace/repo"))
    assert "## Task T012\n\nImplement the parser\n" in prompt
    assert "checked out at `/workspace/repo` on the branch `agentic/001-feature/T012`" in prompt
    assert "never touch the base branch `001-feature`" in prompt
    assert "Don't tick the task's checkbox in tasks.md" in prompt
    assert "`specs/001-feature`" in prompt
    # the context file keeps its own fence inside a longer one
    assert "### specs/001-feature/plan.md\n\n````\n```py\nx = 1\n```\n````" in prompt


def test_prompt_without_optional_parts() -> None:
    ctx = CTX.model_copy(update={"feature_dir": None, "context_files": []})
    prompt = render_prompt(ctx, Path("/w"))
    assert "Context from the feature" not in prompt and "feature's documents" not in prompt


def test_signal_classification_by_deadline() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert classify_signal(now, None, 15) == "cancelled"
    assert classify_signal(now, now + timedelta(minutes=10), 15) == "cancelled"
    assert classify_signal(now, now + timedelta(seconds=10), 15) == "timed_out"
    assert classify_signal(now, now - timedelta(seconds=1), 15) == "timed_out"


def test_the_deadline_stops_the_task_by_itself() -> None:
    stop = StopControl()
    called = threading.Event()
    stop.on_stop(called.set)
    notes: list[str] = []
    triggers = StopTriggers(stop, datetime.now(UTC) + timedelta(seconds=0.2), 15, notes.append)
    triggers.install()
    try:
        assert called.wait(10)
    finally:
        triggers.close()
    assert stop.reason == "timed_out" and stop.detail == "the task's deadline passed"
    assert not stop.request("cancelled", "later")  # the first reason stays
    assert stop.reason == "timed_out" and notes


def test_git_failures_are_classified() -> None:
    assert classify("git@h: Permission denied (publickey).\nfatal: Could not read from remote") == "auth"
    assert classify("Host key verification failed.") == "hostkey"
    assert classify(" ! [remote rejected] HEAD -> b (pre-receive hook declined)") == "rejected"
    assert classify(" ! [rejected]        HEAD -> b (fetch first)") == "non_fast_forward"
    assert classify("fatal: Remote branch nope not found in upstream origin") == "not_found"
    assert classify("fatal: unable to access 'https://h/': Could not resolve host: h") == "network"
    assert classify("something else") == "other"


def test_git_error_message_is_short_relevant_and_redacted() -> None:
    stderr = (
        "Enumerating objects: 5\nremote: token abcdef123456 refused\nerror: failed to push some refs to 'x'\n"
    )
    exc = GitError("push of b", stderr, 1, Redactor(["abcdef123456"]))
    assert str(exc) == (
        "push of b failed: git failed: remote: token [REDACTED] refused | "
        "error: failed to push some refs to 'x'"
    )
    assert exc.transient


def test_checkout_dir_names() -> None:
    assert checkout_dir_name("https://git.example.com/org/repo.git") == "repo"
    assert checkout_dir_name("git@host:org/my-app.git") == "my-app"
    assert checkout_dir_name("file:///tmp/x/project.git/") == "project"
    assert checkout_dir_name("https://h/..") == "repo"


def test_the_agent_gets_no_git_credentials_but_its_llm_keys(tmp_path: Path) -> None:
    environ = {
        "PATH": "/bin",
        "AGENTIC_GIT_TOKEN": "t",
        "AGENTIC_GIT_USERNAME": "u",
        "GIT_SSH_COMMAND": "ssh -i k",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "credential.helper",
        "ANTHROPIC_API_KEY": "llm",
        "OPENCODE_DISABLE_MODELS_FETCH": "0",
        "OPENCODE_CONFIG_CONTENT": json.dumps(
            {"agent": {"title": {"disable": False}, "x": 1}, "share": "auto"}
        ),
    }
    env = opencode_env(environ, tmp_path, {"provider": {"p": {"name": "P"}}})
    assert not {
        "AGENTIC_GIT_TOKEN",
        "AGENTIC_GIT_USERNAME",
        "GIT_SSH_COMMAND",
        "GIT_CONFIG_COUNT",
        "GIT_CONFIG_KEY_0",
    } & set(env)
    assert env["ANTHROPIC_API_KEY"] == "llm" and env["PWD"] == str(tmp_path)
    assert env["OPENCODE_DISABLE_AUTOUPDATE"] == "1" and env["OPENCODE_DISABLE_MODELS_FETCH"] == "0"
    assert env["OPENCODE_DISABLE_PROJECT_CONFIG"] == "1"
    config = json.loads(env["OPENCODE_CONFIG_CONTENT"])
    assert config == {
        "agent": {"title": {"disable": True}, "x": 1},
        "share": "disabled",
        "autoupdate": False,
        "provider": {"p": {"name": "P"}},
    }


def test_opencode_is_pinned_to_the_llm_proxy(tmp_path: Path) -> None:
    """The operator's provider (with a key reference) and an inline config naming another base URL
    are overridden: OpenCode talks only to the proxy, with a placeholder key, and only to the proxied
    providers; the repository's own config is off."""
    proxy = {"scripted": "http://127.0.0.1:8787/scripted", "anthropic": "http://127.0.0.1:8787/anthropic"}
    environ = {
        "AGENTIC_LLM_PROXY": json.dumps(proxy),
        "OPENCODE_DISABLE_PROJECT_CONFIG": "0",
        "OPENCODE_CONFIG_CONTENT": json.dumps({"provider": {"anthropic": {"options": {
            "baseURL": "https://evil.example/v1"}}}, "enabled_providers": ["opencode"]}),
    }
    operator = {"provider": {"scripted": {"npm": "@ai-sdk/openai-compatible", "options": {
        "baseURL": "http://10.0.0.1:9/v1", "apiKey": "{env:SCRIPTED_API_KEY}"}}}}
    env = opencode_env(environ, tmp_path, operator)
    assert env["OPENCODE_DISABLE_PROJECT_CONFIG"] == "1"
    config = json.loads(env["OPENCODE_CONFIG_CONTENT"])
    assert config["provider"] == {
        "scripted": {"npm": "@ai-sdk/openai-compatible", "options": {
            "baseURL": "http://127.0.0.1:8787/scripted", "apiKey": "agentic-llm-proxy"}},
        "anthropic": {"options": {"baseURL": "http://127.0.0.1:8787/anthropic", "apiKey": "agentic-llm-proxy"}},
    }
    assert config["enabled_providers"] == ["anthropic", "scripted"]


@pytest.mark.parametrize("value", ['["anthropic"]', '{"anthropic": "https://api.anthropic.com/v1"}', "{"])
def test_a_proxy_setting_that_does_not_point_at_the_pod_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="invalid AGENTIC_LLM_PROXY: it is not a JSON object of provider ids"):
        opencode_env({"AGENTIC_LLM_PROXY": value}, tmp_path, {})


def test_without_a_proxy_the_config_is_left_alone(tmp_path: Path) -> None:
    config = json.loads(opencode_env({}, tmp_path, {})["OPENCODE_CONFIG_CONTENT"])
    assert "enabled_providers" not in config and "provider" not in config


def test_opencode_command() -> None:
    assert opencode_command("opencode", Path("/w/r"), "a/b", "build") == [
        "opencode",
        "run",
        "--format",
        "json",
        "--dir",
        "/w/r",
        "--auto",
        "--model",
        "a/b",
        "--agent",
        "build",
    ]
    assert opencode_command("oc", Path("/w"), None, None)[-1] == "--auto"


def test_stop_control_callbacks_run_once_even_when_registered_late() -> None:
    stop = StopControl()
    calls: list[str] = []
    stop.on_stop(lambda: calls.append("early"))
    assert stop.request("cancelled", "SIGTERM received")
    stop.on_stop(lambda: calls.append("late"))
    assert (
        calls == ["early", "late"] and stop.at_monotonic is not None and stop.at_monotonic <= time.monotonic()
    )
