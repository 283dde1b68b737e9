"""`make lint` lints the GitHub workflows with actionlint and zizmor (`make lint-workflows`): the
shipped ones pass, and a planted broken or unsafe workflow fails it, with the linter's finding."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.testenv import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
CHECKOUT = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1"

# Well-formed and safe: what the planted ones change one thing of.
GOOD = f"""name: planted
on:
  pull_request:
permissions: {{}}
jobs:
  build:
    runs-on: ubuntu-24.04
    permissions:
      contents: read
    steps:
      - uses: {CHECKOUT}
        with:
          persist-credentials: false
      - run: make lint
"""

PLANTED = {
    # actionlint: a job that needs a job that does not exist
    "broken-needs": (GOOD.replace("    runs-on: ubuntu-24.04\n", "    needs: [nope]\n    runs-on: ubuntu-24.04\n"),
                     'job "build" needs job "nope" which does not exist'),
    # actionlint: shellcheck of the run: script
    "broken-shell": (GOOD.replace("      - run: make lint\n", '      - run: cd $HOME/x; rm -rf "$dir"/*\n'),
                     "SC2086"),
    # zizmor: an action pinned by a tag anyone with push rights can move
    "unpinned-action": (GOOD.replace(CHECKOUT, "actions/checkout@v7"), "unpinned-uses"),
    # zizmor: the checkout's token left in .git/config for later steps (and artifacts)
    "persisted-credentials": (GOOD.replace("        with:\n          persist-credentials: false\n", ""),
                              "artipacked"),
    # actionlint (zizmor too): a pull request title expanded into a shell script (template injection)
    "injection": (GOOD.replace("      - run: make lint\n",
                               "      - run: echo ${{ github.event.pull_request.title }}\n"),
                  '"github.event.pull_request.title" is potentially untrusted'),
    # zizmor: pull_request_target runs with the base repository's token and secrets for forks' PRs
    "pull-request-target": (GOOD.replace("  pull_request:\n", "  pull_request_target:\n"), "dangerous-triggers"),
}


def lint_workflows(*files: Path) -> subprocess.CompletedProcess[str]:
    args = ["make", "--no-print-directory", "lint-workflows"]
    if files:
        args.append("WORKFLOWS=" + " ".join(str(f) for f in files))
    return subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


def test_the_shipped_workflows_pass() -> None:
    assert [w.name for w in WORKFLOWS] == ["ci.yml", "release.yml"]
    proc = lint_workflows()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ci.yml" in proc.stdout + proc.stderr and "release.yml" in proc.stdout + proc.stderr


def test_the_unplanted_workflow_passes(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text(GOOD)
    proc = lint_workflows(good)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", PLANTED)
def test_a_planted_bad_workflow_fails_lint(tmp_path: Path, name: str) -> None:
    text, finding = PLANTED[name]
    assert text != GOOD
    planted = tmp_path / f"{name}.yml"
    planted.write_text(text)
    proc = lint_workflows(planted)
    assert proc.returncode != 0, f"{name} passed:\n{proc.stdout}{proc.stderr}"
    assert finding in proc.stdout + proc.stderr
