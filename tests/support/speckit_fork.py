"""The agentic spec-kit fork's own scripts as the oracle (tests/fixtures/speckit-agentic, copied with
its licence and commit id), installed into a test repository the way `specify init` lays them out,
and a feature made from the fork's tasks template."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.testenv import REPO_ROOT

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "speckit-agentic"

# A feature as the fork's tasks template shapes it: phases with purposes and checkpoints, [P],
# [SYNC], [ASYNC], a `depends on`, a stray checkbox line, and the template's examples inside an
# HTML comment and a fenced block (not tasks).
TASKS_MD = """\
# Tasks: Greeter

**Input**: Design documents from `/specs/001-greeter/`

## Format: `[ID] [P?] [SYNC/ASYNC] [Story] Description`

<!--
  The tasks below replace the SAMPLE TASKS of the template:
- [ ] T901 [ASYNC] Create project structure per implementation plan
-->

## Phase 1: Setup (Shared Infrastructure)

**Purpose**: Project initialization and basic structure

- [ ] T001 [P] [ASYNC] Create the greeting module in src/greet.py
- [ ] T002 [P] [ASYNC] Create the farewell module in src/farewell.py
- [ ] T003 [SYNC] Review the module layout with the team

**Checkpoint**: Setup done

---

## Phase 2: User Story 1 - Greet by name (Priority: P1)

- [ ] T004 [ASYNC] [US1] Add a name parameter to src/greet.py (depends on T001)
- [ ] T005 [SYNC] [US1] Wire greet and farewell into src/main.py (depends on T004, T002)
- [ ] 1. Check the sign-off with the product owner

**Checkpoint**: User Story 1 works

## Parallel Example

```bash
- [ ] T999 [ASYNC] an example line in a fenced block
```
"""

SPEC_MD = "# Feature Specification: Greeter\n\nGreet and say goodbye.\n"
PLAN_MD = "# Implementation Plan: Greeter\n\nsrc/greet.py, src/farewell.py, src/main.py\n"


def make_feature(repo: Path, name: str = "001-greeter", tasks_md: str = TASKS_MD) -> Path:
    feature = repo / "specs" / name
    feature.mkdir(parents=True, exist_ok=True)
    (feature / "spec.md").write_text(SPEC_MD)
    (feature / "plan.md").write_text(PLAN_MD)
    (feature / "tasks.md").write_text(tasks_md)
    return feature


def install_scripts(repo: Path) -> Path:
    """The fork's scripts and templates under `<repo>/.specify/`; returns tasks-meta-utils.sh."""
    scripts = repo / ".specify" / "scripts" / "bash"
    scripts.mkdir(parents=True, exist_ok=True)
    for script in (FIXTURE / "scripts" / "bash").iterdir():
        shutil.copy(script, scripts / script.name)
    templates = repo / ".specify" / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    for template in (FIXTURE / "templates").iterdir():
        shutil.copy(template, templates / template.name)
    return scripts / "tasks-meta-utils.sh"


@dataclass(frozen=True)
class Fork:
    """Runs the fork's tasks-meta-utils.sh in `repo` (from its root, as the implement flow does)."""

    repo: Path
    feature: Path

    @classmethod
    def install(cls, repo: Path, feature: Path) -> Fork:
        install_scripts(repo)
        return cls(repo, feature)

    @property
    def meta(self) -> Path:
        return self.feature / "tasks_meta.json"

    def run(self, *args: str) -> str:
        proc = subprocess.run(
            ["bash", ".specify/scripts/bash/tasks-meta-utils.sh", *args],
            cwd=self.repo,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, f"tasks-meta-utils.sh {args[0]} failed: {proc.stderr}"
        return proc.stdout.strip()

    def init(self) -> str:
        return self.run("init", str(self.feature))

    def add_task(self, task_id: str, description: str, mode: str, files: str = "") -> str:
        return self.run("add-task", str(self.meta), task_id, description, files, mode)

    def dispatch_async(self, task_id: str, description: str, context: str = "See plan.md") -> str:
        return self.run(
            "dispatch-async", task_id, "general", description, context,
            "Keep the public API", "Commit your work", str(self.feature),
        )

    def check_status(self, task_id: str) -> str:
        return self.run("check-status", task_id, str(self.feature))

    def summary(self) -> dict[str, Any]:
        return json.loads(self.run("summary", str(self.meta)))

    def statuses(self, *task_ids: str) -> dict[str, str]:
        return {task_id: self.check_status(task_id) for task_id in task_ids}
