"""Redaction: every form of every secret the runner knows becomes [REDACTED]."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mcp_server.runner.redact import REDACTED, Redactor, secret_env_names


@pytest.fixture
def ssh_key(tmp_path: Path) -> str:
    """A private key made for this test (multi-line, as a mounted ssh-privatekey is)."""
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key.read_text()


def test_secret_names_from_the_environment() -> None:
    env = {
        "ANTHROPIC_API_KEY": "a",
        "OPENAI_API_KEY": "b",
        "AGENTIC_GIT_TOKEN": "c",
        "DB_PASSWORD": "d",
        "MY_SECRET_THING": "e",
        "AWS_SECRET_ACCESS_KEY": "f",
        "LLM_GATEWAY": "g",
        "HOME": "/home/agent",
        "AGENTIC_GIT_AUTH": "token",
        "AGENTIC_GIT_SSH_DIR": "/etc/x",
        "PATH": "/bin",
        "SSH_AUTH_SOCK": "/s",
        "AGENTIC_SECRET_ENV": "LLM_GATEWAY, MISSING",
    }
    assert secret_env_names(env) == sorted(
        [
            "ANTHROPIC_API_KEY",
            "OPENAI_API_KEY",
            "AGENTIC_GIT_TOKEN",
            "DB_PASSWORD",
            "MY_SECRET_THING",
            "AWS_SECRET_ACCESS_KEY",
            "LLM_GATEWAY",
        ]
    )


def test_values_and_their_json_forms_and_lines_are_redacted(ssh_key: str) -> None:
    redact = Redactor(["tok-1234567890", 'pa"ss\\word', ssh_key])
    assert redact("token tok-1234567890 here") == f"token {REDACTED} here"
    assert redact(json.dumps({"out": 'x pa"ss\\word y'})) == json.dumps({"out": f"x {REDACTED} y"})
    assert redact(json.dumps({"key": ssh_key})) == json.dumps({"key": REDACTED + "\n"})
    one_line = ssh_key.splitlines()[1]
    assert redact(f"leaked {one_line}") == f"leaked {REDACTED}"


def test_longer_secrets_win_over_their_prefixes() -> None:
    redact = Redactor(["abcdef", "abcdefghij"])
    assert redact("abcdefghij abcdef") == f"{REDACTED} {REDACTED}"


def test_short_values_are_ignored() -> None:
    redact = Redactor(["yes", "", "  "])
    assert len(redact) == 0
    assert redact("yes it is") == "yes it is"


def test_from_environ_and_with_values() -> None:
    redact = Redactor.from_environ({"GITHUB_TOKEN": "ghp_aaaaaaaaaaaa", "HOME": "/home/agent"})
    assert redact("ghp_aaaaaaaaaaaa at /home/agent") == f"{REDACTED} at /home/agent"
    more = redact.with_values(["another-secret"])
    assert more("another-secret ghp_aaaaaaaaaaaa") == f"{REDACTED} {REDACTED}"
    assert redact("another-secret") == "another-secret"  # the first one is unchanged
