"""Fixtures of the end-to-end runner tests: the pinned OpenCode binary (provisioned on first use), a
bare remote with a spec-kit feature branch, and a harness that runs the real runner process."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.git_remotes import BareRemote, make_bare_remote
from tests.support.runner_harness import REPO_ROOT, RunnerHarness
from tests.support.scripted_model import Script, ScriptedModel, Turn, edit, read

TASK_BRANCH = "agentic/001-feature/T001"
# AGENTIC_TEST_IMAGE_TAG lets parallel checkouts on one machine build and test their own image.
IMAGE_REPOSITORY = "localhost/agentic-sdlc-agent-runner"
IMAGE_TAG = os.environ.get("AGENTIC_TEST_IMAGE_TAG") or "dev"
IMAGE = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"
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


@pytest.fixture(scope="session")
def agent_image() -> str:
    """The image of the current code: scripts/build-image.sh (what `make image` runs; a warm build
    reuses every unchanged layer and the cached base)."""
    proc = subprocess.run([str(REPO_ROOT / "scripts" / "build-image.sh"), IMAGE], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"scripts/build-image.sh failed ({proc.returncode}):\n{proc.stderr[-5000:]}", pytrace=False)
    return IMAGE
