"""naming.py: task ids, branches, repo URLs, object names and labels."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_server import naming
from mcp_server.defaults import chart_defaults
from mcp_server.errors import InvalidInput


@pytest.mark.parametrize("task_id", ["T012", "t1", "T012-a", "US1_T3", "A" * 40])
def test_task_ids_that_are_allowed(task_id: str) -> None:
    assert naming.validate_task_id(task_id) == task_id


@pytest.mark.parametrize(
    ("task_id", "problem"),
    [
        ("T1;rm -rf /", "it contains characters that are not allowed"),
        ("T1$(id)", "it contains characters that are not allowed"),
        ("T1`id`", "it contains characters that are not allowed"),
        ("T1\nT2", "it contains characters that are not allowed"),
        ("..", "it contains characters that are not allowed"),
        ("T1/../x", "it contains characters that are not allowed"),
        ("-T1", "it contains characters that are not allowed"),
        ("T1-", "it contains characters that are not allowed"),
        ("", "it is empty"),
        ("T" * 300, "it is 300 characters long"),
    ],
)
def test_task_ids_that_are_refused(task_id: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        naming.validate_task_id(task_id)
    assert str(refused.value) == (
        f"invalid task_id: {problem}; allowed: 1 to 40 letters, digits, '-' or '_', starting and ending "
        "with a letter or digit (for example T012)."
    )
    assert refused.value.field == "task_id"


@pytest.mark.parametrize("branch", ["main", "001-feature", "feature/x.y", "a+b", "agentic/001-feature/T012"])
def test_branches_that_are_allowed(branch: str) -> None:
    assert naming.validate_branch(branch) == branch


@pytest.mark.parametrize(
    "branch",
    [
        "a b",
        "a..b",
        "a//b",
        "-a",
        "/a",
        "a/",
        "a.",
        "a.lock",
        "a/.b",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[",
        "a\\b",
        "a@{1}",
        "a\x00",
        "x" * 201,
        "ä",
    ],
)
def test_branches_that_are_refused(branch: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        naming.validate_branch(branch, "base_branch")
    assert refused.value.field == "base_branch"
    assert refused.value.allowed == naming.BRANCH_ALLOWED


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com/org/repo.git",
        "ssh://git@git.example.com:2222/org/repo.git",
        "git@github.com:org/repo.git",
        "file:///srv/git/repo.git",
        "git://host/repo",
    ],
)
def test_repo_urls_that_are_allowed(url: str) -> None:
    assert naming.validate_repo_url(url) == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://user:s3cret@git.example.com/org/repo.git", "it contains embedded credentials"),
        ("https://ghp_token123@github.com/org/repo.git", "it contains embedded credentials"),
        ("ssh://git:pw@host/repo", "it contains embedded credentials"),
        ("https://host/repo?token=abc", "it has a query or fragment"),
        ("ftp://host/repo", "the scheme 'ftp' is not supported"),
        ("repo with space", "it is not a clone URL"),
        ("user:pw@host:repo", "it contains embedded credentials"),
    ],
)
def test_repo_urls_that_are_refused_never_echo_the_value(url: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        naming.validate_repo_url(url)
    assert str(refused.value).startswith(f"invalid repo: {problem}")
    for secret in ("s3cret", "ghp_token123", "token=abc", ":pw@"):
        assert secret not in str(refused.value)


def test_job_names_are_deterministic_dns_labels_and_distinct_per_feature() -> None:
    name = naming.job_name("T012", "001-feature")
    assert name == naming.job_name("T012", "001-feature")
    assert name != naming.job_name("T012", "002-feature")
    assert name != naming.job_name("t012", "001-feature")
    assert name.startswith("agentic-t012-")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63


@given(
    st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,38}[A-Za-z0-9])?", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9/._+-]{0,199}", fullmatch=True),
)
def test_job_names_are_always_valid(task_id: str, branch: str) -> None:
    name = naming.job_name(task_id, branch)
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63


@given(st.text(min_size=1, max_size=300))
def test_label_values_are_always_valid(text: str) -> None:
    value = naming.label_value(text)
    assert len(value) <= 63
    assert re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", value)


def test_label_values_keep_clean_branches_and_hash_changed_ones() -> None:
    assert naming.label_value("001-feature") == "001-feature"
    cut = naming.label_value("feature/" + "x" * 80)
    assert cut.startswith("feature-xxx") and cut.endswith(naming.short_hash("feature/" + "x" * 80))
    assert naming.label_value("a/b") != naming.label_value("a-b")


def test_task_labels_follow_the_contract() -> None:
    assert naming.task_labels("T012", "001-feature", "dev") == {
        "app.kubernetes.io/managed-by": "agentic-sdlc-agent-runner",
        "app.kubernetes.io/component": "agent-task",
        "agentic-sdlc.dev/task-id": "T012",
        "agentic-sdlc.dev/feature": "001-feature",
        "agentic-sdlc.dev/environment": "dev",
        "agentic-sdlc.dev/attempt": "1",
    }
    assert naming.task_labels("T012", "001-feature", "dev", 3)["agentic-sdlc.dev/attempt"] == "3"


def test_attempts_have_their_own_job_names() -> None:
    first = naming.job_name("T012", "001-feature")
    assert naming.job_name("T012", "001-feature", 1) == first
    second = naming.job_name("T012", "001-feature", 2)
    assert second == first + "-a2"
    long_id = "T" + "x" * 99
    assert len(naming.job_name(long_id, "001-feature", 9999)) <= 63
    assert naming.attempt_of({"agentic-sdlc.dev/attempt": "4"}) == 4
    assert naming.attempt_of({}) == 1
    assert naming.attempt_of({"agentic-sdlc.dev/attempt": "x"}) == 1


def test_selector() -> None:
    assert naming.selector("dev") == (
        "app.kubernetes.io/managed-by=agentic-sdlc-agent-runner,agentic-sdlc.dev/environment=dev"
    )
    assert naming.selector("dev", "T1", "f/x").endswith(
        f",agentic-sdlc.dev/task-id=T1,agentic-sdlc.dev/feature={naming.label_value('f/x')}"
    )


def test_render_branch() -> None:
    assert (
        naming.render_branch(chart_defaults().branch_pattern, "001-feature", "T012")
        == "agentic/001-feature/T012"
    )
    assert naming.render_branch("{task_id}-work", "main", "T1") == "T1-work"
    with pytest.raises(InvalidInput, match="it does not contain"):
        naming.render_branch("agentic/{base_branch}", "main", "T1")
    with pytest.raises(InvalidInput, match="placeholders other than"):
        naming.render_branch("{user}/{task_id}", "main", "T1")
    with pytest.raises(InvalidInput, match="invalid task branch: it is not a valid git branch name"):
        naming.render_branch("{task_id}.lock", "main", "T1")
