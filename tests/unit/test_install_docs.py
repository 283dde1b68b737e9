"""README's Install section is what a user copies: the opencode.json snippet is valid and is this
repository's own server entry (fewer pass-through variables), the files it says to copy exist, and
every command names the current version."""

from __future__ import annotations

import json
import re

from mcp_server import __version__
from tests.support.testenv import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
INSTALL = README.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", INSTALL, flags=re.DOTALL)


def test_the_opencode_snippet_is_the_repositorys_server_entry() -> None:
    (snippet,) = blocks("json")
    server = json.loads(snippet)["mcp"]["agentic-runner"]
    ours = json.loads((REPO_ROOT / "opencode.json").read_text(encoding="utf-8"))["mcp"]["agentic-runner"]
    assert {k: v for k, v in server.items() if k != "environment"} == {
        k: v for k, v in ours.items() if k != "environment"}
    assert server["command"] == ["agentic-runner-mcp"]
    assert server["environment"].items() <= ours["environment"].items()


def test_the_files_to_copy_exist() -> None:
    assert (REPO_ROOT / ".opencode" / "agents" / "async-delegate.md").is_file()
    for name in ("implement-async", "follow-agents", "agent-tasks"):
        assert (REPO_ROOT / ".opencode" / "commands" / f"{name}.md").is_file()
    assert ".opencode/commands/{implement-async,follow-agents,agent-tasks}.md" in INSTALL


def test_every_install_command_names_the_version() -> None:
    commands = [ln for block in blocks("sh") for ln in block.splitlines() if ln.strip()]
    assert len(commands) == 5
    assert commands[0].startswith(f"uv tool install git+https://github.com/agentic-sdlc/agentic-sdlc-agent-runner@v{__version__}")
    assert commands[1].startswith(f"pipx install git+https://github.com/agentic-sdlc/agentic-sdlc-agent-runner@v{__version__}")
    assert commands[2].startswith(f"uv tool install ./agentic_sdlc_agent_runner-{__version__}-py3-none-any.whl")
    assert commands[3].endswith(f"# agentic-runner {__version__}")
    assert f"--version {__version__} -n agent-runner-dev --create-namespace" in commands[4]
    assert f"`ghcr.io/agentic-sdlc/agentic-sdlc-agent-runner:{__version__}`" in INSTALL
