"""speckit.py: tasks.md read as spec-kit and a Markdown reader see it, and tasks_dag.json waves."""

from __future__ import annotations

import pytest

from mcp_server import speckit
from mcp_server.errors import InvalidInput
from tests.support.speckit_fork import TASKS_MD as FORK_TASKS_MD

TASKS_MD = """\
# Tasks: 001 feature

## Phase 1: Setup
- [X] T001 Create project structure
- [ ] T002 [P] [ASYNC] [US1] Implement the parser in src/parser.py
- [ ] T003 [SYNC] Review the schema in docs/schema.md
- [ ] T004 [P] [ASYNC] Write tests in tests/test_parser.py

## Phase 2: Polish
- [x] T005 [ASYNC] Done already
- [ ] T006 [ASYNC] [SYNC] Contradictory: treated as sync
* [ ] T007 [async] Lowercase tags count too
- [ ] Review the README (a checklist item, not a task)
"""


def test_parse_tasks() -> None:
    doc = speckit.parse_tasks(TASKS_MD)
    tasks = doc.tasks
    assert [t.task_id for t in tasks] == ["T001", "T002", "T003", "T004", "T005", "T006", "T007"]
    t2 = tasks[1]
    assert (t2.done, t2.tags, t2.description, t2.line, t2.section, t2.phase) == (
        False,
        ("P", "ASYNC", "US1"),
        "Implement the parser in src/parser.py",
        5,
        "Phase 1: Setup",
        0,
    )
    assert [t.task_id for t in tasks if t.is_open_async] == ["T002", "T004", "T007"]
    assert tasks[0].done and tasks[4].done and not tasks[4].is_open_async
    assert [(p.title, p.label) for p in doc.phases] == [("Phase 1: Setup", "Phase 1"), ("Phase 2: Polish", "Phase 2")]
    assert [t.phase for t in tasks] == [0, 0, 0, 0, 1, 1, 1]
    assert [t.execution_mode for t in tasks] == ["SYNC", "ASYNC", "SYNC", "ASYNC", "ASYNC", "SYNC", "ASYNC"]
    assert doc.warnings == [
        "line 13: a checkbox that is not a task (no task id such as T012 after the box): skipped"
    ]


def test_the_fork_template_feature_as_a_markdown_reader_sees_it() -> None:
    """Lines in an HTML comment and in a fenced block are no tasks; a stray checkbox is a warning;
    `(depends on ...)` is read; phases come from the `##` headings."""
    doc = speckit.parse_tasks(FORK_TASKS_MD)
    assert [t.task_id for t in doc.tasks] == ["T001", "T002", "T003", "T004", "T005"]
    assert [p.label for p in doc.phases] == ["Phase 1", "Phase 2"]
    assert {t.task_id: t.depends_on for t in doc.tasks if t.depends_on} == {
        "T004": ("T001",),
        "T005": ("T004", "T002"),
    }
    assert doc.warnings == [
        "line 28: a checkbox that is not a task (no task id such as T012 after the box): skipped"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "~~~\n- [ ] T001 [ASYNC] in a tilde fence\n~~~\n",
        "````md\n```\n- [ ] T001 [ASYNC] a longer fence holds a shorter one\n```\n````\n",
        "<!-- - [ ] T001 [ASYNC] commented out on one line -->\n",
        "<!-- start\n\n- [ ] T001 [ASYNC] commented out\n\nend -->\n",
        "Use `- [ ] T001 [ASYNC] inline code` as the format.\n",
        "- [ ] `T001` [ASYNC] an id in inline code is not an id\n",
    ],
)
def test_task_like_lines_in_code_and_comments_are_not_tasks(text: str) -> None:
    doc = speckit.parse_tasks(text + "- [ ] T002 [ASYNC] the real one\n")
    assert [t.task_id for t in doc.tasks] == ["T002"]


def test_a_comment_closing_on_a_task_line_leaves_the_task() -> None:
    doc = speckit.parse_tasks("<!-- note\n-->- [ ] T001 [ASYNC] after the comment\n")
    assert [t.task_id for t in doc.tasks] == ["T001"]


@pytest.mark.parametrize("bad", ["T1;rm", "T1$(id)", "T" + "1" * 300, "T1..x", "1.", "T1|x"])
def test_checkbox_lines_without_a_valid_id_are_skipped_with_a_warning_not_planned(bad: str) -> None:
    """Attack: a line of tasks.md smuggling shell metacharacters into a task id. It is no task: it is
    never planned nor spawned; the file is still read."""
    doc = speckit.parse_tasks(f"- [ ] T001 [ASYNC] ok\n- [ ] {bad} [ASYNC] evil\n")
    assert [t.task_id for t in doc.tasks] == ["T001"]
    assert doc.warnings == ["line 2: a checkbox that is not a task (no task id such as T012 after the box): skipped"]


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(InvalidInput, match="line 2: task id T1 is used again"):
        speckit.parse_tasks("- [ ] T1 a\n- [ ] T1 b\n")


def test_unknown_dependencies_are_a_warning() -> None:
    doc = speckit.parse_tasks("- [ ] T1 [ASYNC] a (depends on T9 and T2)\n- [ ] T2 b\n")
    assert doc.tasks[0].depends_on == ("T9", "T2")
    assert doc.warnings == ["line 1: T1 depends on T9, which is not a task of this file: ignored"]


def test_waves_from_the_dag_as_ids_or_as_indices() -> None:
    doc = speckit.parse_tasks(TASKS_MD)
    order = [t.task_id for t in doc.tasks]
    dag = speckit.parse_waves({"execution_waves": [["T001", "T002"], {"tasks": ["T003", {"id": "T004"}]}]}, order)
    assert dag == [["T001", "T002"], ["T003", "T004"]]
    # 0-based indices (adlc.spec.implement.md) into the DAG's own `tasks` list ...
    own = {"tasks": [{"id": "T002"}, {"id": "T004"}, {"id": "T007"}], "execution_waves": [[0, 1], [2]]}
    assert speckit.parse_waves(own, order) == [["T002", "T004"], ["T007"]]
    # ... or, without one, into tasks.md's tasks
    assert speckit.parse_waves({"execution_waves": [[1], [3, 6]]}, order) == [["T002"], ["T004", "T007"]]
    assert speckit.parse_waves({"nodes": []}, order) is None
    with pytest.raises(InvalidInput, match="invalid tasks_dag.json: task index 7 is out of range"):
        speckit.parse_waves({"execution_waves": [[7]]}, order)
    with pytest.raises(InvalidInput, match="invalid tasks_dag.json"):
        speckit.parse_waves({"execution_waves": "T1"}, order)
    with pytest.raises(InvalidInput, match="invalid tasks_dag.json: a wave entry is neither"):
        speckit.parse_waves({"execution_waves": [[True]]}, order)


def test_selection_of_unknown_ids_is_refused() -> None:
    doc = speckit.parse_tasks(TASKS_MD)
    with pytest.raises(InvalidInput, match="invalid task_ids: no task T999 in the tasks file"):
        speckit.check_selection(doc, ["T999"])
    assert speckit.check_selection(doc, ["T002"]) == {"T002"}
