"""Fixtures of the end-to-end runner tests: the pinned OpenCode binary (provisioned on first use), a
bare remote with a spec-kit feature branch, and a harness that runs the real runner process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.git_remotes import BareRemote, make_bare_remote
from tests.support.runner_harness import RunnerHarness
from tests.support.scripted_model import Script, ScriptedModel, Turn, edit, read

TASK_BRANCH = "agentic/001-feature/T001"
FINAL_TEXT = "Changed the greeting in README.md to 'hello agent'."


def edit_script(final: str = FINAL_TEXT) -> Script:
    """Read README.md, change it with OpenCode's own edit tool, then finish."""
    return [
        Turn(text="Reading README.md first.", tool_calls=(read("README.md"),)),
        Turn(tool_calls=(edit("README.md", "hello world", "hello agent"),)),
        Turn(text=final),
    ]


@pytest.fixture
def remote(tmp_path: Path) -> BareRemote:
    return make_bare_remote(tmp_path / "remotes")


@pytest.fixture
def harness(tmp_path: Path, opencode_bin: str) -> Callable[[ScriptedModel], RunnerHarness]:
    def make(model: ScriptedModel, name: str = "runner") -> RunnerHarness:
        return RunnerHarness(tmp_path / name, opencode_bin, model)

    return make
