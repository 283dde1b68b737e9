"""The agent image installs only the runner's requirements (container/requirements-runner.txt) and the
package with --no-deps, so every distribution the runner imports, transitively, must be in that set,
pinned and hashed, within the ranges pyproject.toml declares. tests/e2e/test_image.py checks the
image itself."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.release import REQUIREMENTS_TXT
from tests.support.release import pinned_runner_requirements as pinned
from tests.support.testenv import REPO_ROOT

REQUIREMENTS_IN = REPO_ROOT / "container" / "requirements-runner.in"
PROJECT = "agentic-sdlc-agent-runner"

# Import every module of mcp_server.runner in a fresh interpreter and name the distributions whose
# modules ended up loaded. `_distutils_hack` is setuptools' .pth shim, loaded at start-up by site.
IMPORTED_DISTRIBUTIONS = r"""
import importlib, json, pkgutil, sys
import importlib.metadata as md
import mcp_server.runner as runner
for info in pkgutil.walk_packages(runner.__path__, "mcp_server.runner."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
owners = md.packages_distributions()
top = {name.split(".")[0] for name in sys.modules} - {"_distutils_hack"}
print(json.dumps(sorted({dist for name in top for dist in owners.get(name, [])})))
"""


def runner_distributions() -> set[str]:
    out = subprocess.run([sys.executable, "-c", IMPORTED_DISTRIBUTIONS], capture_output=True, text=True,
                         check=True, cwd=REPO_ROOT).stdout
    return {canonicalize_name(d) for d in json.loads(out)} - {PROJECT}


def test_the_runner_imports_only_pinned_distributions() -> None:
    imported = runner_distributions()
    assert imported, "the probe found no third-party distribution at all (pydantic and jinja2 expected)"
    missing = sorted(imported - set(pinned()))
    assert missing == [], (f"mcp_server/runner imports {missing}, which the agent image would not have: add "
                           f"them to {REQUIREMENTS_IN.name} and run `make runner-requirements`")


def test_the_runner_needs_neither_the_kubernetes_client_nor_the_mcp_sdk() -> None:
    imported = runner_distributions()
    assert not imported & {"kubernetes", "mcp", "anyio"}, imported
    assert not set(pinned()) & {"kubernetes", "mcp", "anyio"}


def test_every_pin_is_hashed() -> None:
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", REQUIREMENTS_TXT.read_text(encoding="utf-8").split("\n", 2)[2])
    assert len(blocks) == len(pinned())
    for block in blocks:
        assert "--hash=sha256:" in block, block.splitlines()[0]


def test_the_runner_ranges_are_the_package_ranges() -> None:
    declared = {canonicalize_name(r.name): r for r in map(
        Requirement, tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"])}
    lines = [ln for ln in REQUIREMENTS_IN.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    runner = {canonicalize_name(r.name): r for r in map(Requirement, lines)}
    assert runner, REQUIREMENTS_IN
    for name, req in runner.items():
        assert name in declared, f"{name} is in {REQUIREMENTS_IN.name} but not a dependency in pyproject.toml"
        assert req.specifier == declared[name].specifier, f"{name}: {req.specifier} vs pyproject's"
        assert declared[name].specifier.contains(pinned()[name]), f"{name}=={pinned()[name]} is outside pyproject's"
