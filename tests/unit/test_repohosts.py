"""repohosts.py: which repo URLs a task may use, per environment's host rules (issue 10).

Each refusal is an attack or a mistake the check stops; the URL itself is never repeated."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_server import repohosts
from mcp_server.repohosts import HostRule, ParsedRepo, RepoURLError, check_repo_url, parse_rules

RULES = (HostRule("github.com"), HostRule("gitlab.com"), HostRule("127.0.0.1", insecure=True),
         HostRule("::1", insecure=True))
TOKEN = "ghp_" + secrets.token_hex(12)  # made at run time: no credential-like literal in the sources


@pytest.mark.parametrize(
    ("url", "cluster", "parsed"),
    [
        ("https://github.com/org/repo.git", True, ParsedRepo("https", "github.com", None, "/org/repo.git")),
        ("https://GitHub.com:8443/org/repo", True, ParsedRepo("https", "github.com", 8443, "/org/repo")),
        ("ssh://git@github.com/org/repo.git", True, ParsedRepo("ssh", "github.com", None, "/org/repo.git")),
        ("ssh://git@gitlab.com:2222/org/repo", True, ParsedRepo("ssh", "gitlab.com", 2222, "/org/repo")),
        ("git@github.com:org/repo.git", True, ParsedRepo("ssh", "github.com", None, "org/repo.git")),
        ("github.com:org/repo.git", True, ParsedRepo("ssh", "github.com", None, "org/repo.git")),
        ("http://127.0.0.1:8080/repo.git", True, ParsedRepo("http", "127.0.0.1", 8080, "/repo.git")),
        ("git://127.0.0.1:9418/repo.git", True, ParsedRepo("git", "127.0.0.1", 9418, "/repo.git")),
        ("http://[::1]:8080/repo.git", True, ParsedRepo("http", "::1", 8080, "/repo.git")),
        ("/srv/git/repo.git", False, ParsedRepo("file", "", None, "/srv/git/repo.git")),
        ("../repo", False, ParsedRepo("file", "", None, "../repo")),
        ("file:///srv/git/repo.git", False, ParsedRepo("file", "", None, "/srv/git/repo.git")),
    ],
)
def test_urls_the_rules_allow(url: str, cluster: bool, parsed: ParsedRepo) -> None:
    assert check_repo_url(url, RULES, cluster=cluster) == parsed


@pytest.mark.parametrize(
    ("url", "cluster", "problem"),
    [
        # the token goes to any host: a host the environment does not list
        ("https://evil.example/org/repo.git", True, "the host evil.example is not one of the configured repo hosts"),
        ("git@evil.example:org/repo.git", True, "the host evil.example is not one of the configured repo hosts"),
        ("https://github.com.evil.example/org/repo", True,
         "the host github.com.evil.example is not one of the configured repo hosts"),
        # ... over plain text
        ("http://github.com/org/repo.git", True,
         "http:// is not allowed for the host github.com, which is not marked insecure"),
        ("git://github.com/org/repo.git", True,
         "git:// is not allowed for the host github.com, which is not marked insecure"),
        # remote helpers run commands / read descriptors
        ("ext::sh -c touch% /tmp/pwned", False, "it contains white space or control characters"),
        ("ext::sh%-c%id", True, "it names a git remote helper (<transport>::<address>, such as ext:: or fd::), "
                                "which runs commands or reads descriptors"),
        ("ext::sh%-c%id", False, "it names a git remote helper (<transport>::<address>, such as ext:: or fd::), "
                                 "which runs commands or reads descriptors"),
        ("fd::3", True, "it names a git remote helper (<transport>::<address>, such as ext:: or fd::), "
                        "which runs commands or reads descriptors"),
        ("https::github.com/org/repo", True, "it names a git remote helper (<transport>::<address>, such as ext:: "
                                             "or fd::), which runs commands or reads descriptors"),
        # a pod cannot clone the machine's paths
        ("file:///etc/agentic-sdlc/git", True, "file:// names a path on the machine, which a pod cannot clone"),
        ("/etc/agentic-sdlc/git", True, "it is a local path, which a pod cannot clone"),
        ("repo", True, "it is a local path, which a pod cannot clone"),
        ("file://evil.example/x", False, "a file:// URL names a host"),
        # other schemes
        ("ftp://github.com/org/repo", True, "the scheme ftp:// is not allowed"),
        ("svn+ssh://github.com/org/repo", True, "the scheme svn+ssh:// is not allowed"),
        # credentials in the URL
        (f"https://{TOKEN}@github.com/org/repo.git", True, repohosts.CREDENTIALS),
        (f"https://x-access-token:{TOKEN}@github.com/org/repo.git", True, repohosts.CREDENTIALS),
        (f"http://user:{TOKEN}@127.0.0.1/repo.git", True, repohosts.CREDENTIALS),
        (f"ssh://git:{TOKEN}@github.com/org/repo.git", True, repohosts.CREDENTIALS),
        (f"ssh://git@{TOKEN}@github.com/org/repo.git", True, repohosts.CREDENTIALS),
        (f"git:{TOKEN}@github.com:org/repo.git", True, repohosts.CREDENTIALS),
        # ssh option injection (CVE-2017-1000117 and friends)
        ("ssh://-oProxyCommand=touch%20x@github.com/org/repo", True, repohosts.USER_PROBLEM),
        ("-oProxyCommand=x@github.com:org/repo", True, repohosts.USER_PROBLEM),
        ("ssh://-oProxyCommand=x/org/repo", True, "it has no host, or its host is not a DNS name or an IP address"),
        ("github.com:-oProxyCommand=x", True, "it names no repository path (or one starting with '-')"),
        ("-github.com:org/repo", True, "its host is not a DNS name or an IP address"),
        ("[::1]:repo", True, "a bracketed scp-like host is not supported (write ssh://user@[address]/path)"),
        # not a URL
        ("", True, "it is empty"),
        ("https://github.com/org/repo\n", True, "it contains white space or control characters"),
        ("https://github.com/org/repo?x=1", True, "it has a query or fragment"),
        ("https://github.com/", True, "it names no repository path"),
        ("https://github.com:99999/org/repo", True, "it is not a valid URL (bad host or port)"),
        ("https:///org/repo", True, "it has no host, or its host is not a DNS name or an IP address"),
        ("https://github.com/" + "a" * 500, True, "it is 519 characters long (at most 500)"),
    ],
)
def test_urls_that_are_refused(url: str, cluster: bool, problem: str) -> None:
    with pytest.raises(RepoURLError) as refused:
        check_repo_url(url, RULES, cluster=cluster)
    assert refused.value.field == "repo"
    assert refused.value.problem == problem
    assert str(refused.value) == (
        f"invalid repo: {problem}; allowed: {repohosts.allowed_text(RULES, cluster=cluster)}.")
    assert TOKEN not in str(refused.value)


def test_the_message_says_what_is_allowed() -> None:
    assert repohosts.allowed_text(RULES, cluster=True) == (
        "an https:// or ssh:// URL or scp-like [user@]host:path to a configured host "
        "(github.com, gitlab.com, 127.0.0.1, ::1); http:// and git:// only to the hosts marked insecure "
        "(127.0.0.1, ::1); no user:password@ or token@ in it (the git secret authenticates)")
    assert repohosts.allowed_text((HostRule("github.com"),), cluster=False) == (
        "an https:// or ssh:// URL or scp-like [user@]host:path to a configured host (github.com); "
        "no host is marked insecure, so no http:// or git://; or a local path or file:// URL; "
        "no user:password@ or token@ in it (the git secret authenticates)")


def test_no_rules_allow_no_host() -> None:
    with pytest.raises(RepoURLError, match="the host github.com is not one of the configured repo hosts"):
        check_repo_url("https://github.com/org/repo", (), cluster=True)
    assert check_repo_url("/srv/repo", (), cluster=False).scheme == "file"


def test_a_refusal_is_a_value_error() -> None:
    """The runner and the server catch ValueError (the contract)."""
    with pytest.raises(ValueError):
        check_repo_url("https://evil.example/x", RULES, cluster=True)


def test_rules_from_json() -> None:
    text = '[{"host": "GitHub.com"}, {"host": "127.0.0.1", "insecure": true}, {"host": "[::1]", "insecure": true}]'
    rules = parse_rules(text)
    assert rules == (HostRule("github.com"), HostRule("127.0.0.1", True), HostRule("::1", True))
    assert parse_rules(repohosts.rules_json(rules)) == rules
    assert parse_rules("[]") == ()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("github.com", "it is not JSON"),
        ('{"host": "github.com"}', "it is not a list"),
        ('["github.com"]', "entry 0 is not an object with the keys host and insecure"),
        ('[{"host": "github.com", "token": "x"}]', "entry 0 is not an object with the keys host and insecure"),
        ('[{"host": "github.com/org"}]', "entry 0: host is not a DNS name or an IP address"),
        ('[{"host": "*.github.com"}]', "entry 0: host is not a DNS name or an IP address"),
        ('[{"insecure": true}]', "entry 0: host is not a DNS name or an IP address"),
        ('[{"host": "a.b", "insecure": "yes"}]', "entry 0: insecure is not true or false"),
        ('[{"host": "a.b"}, {"host": "A.B"}]', "entry 1: host a.b is listed twice"),
    ],
)
def test_rules_that_are_refused(text: str, problem: str) -> None:
    with pytest.raises(RepoURLError) as refused:
        parse_rules(text, source="AGENTIC_REPO_HOSTS")
    assert str(refused.value) == f"invalid AGENTIC_REPO_HOSTS: {problem}; allowed: {repohosts.RULES_ALLOWED}."


def test_find_rule_is_exact() -> None:
    assert repohosts.find_rule("GITHUB.COM", RULES) == HostRule("github.com")
    assert repohosts.find_rule("api.github.com", RULES) is None
    assert repohosts.find_rule("0:0:0:0:0:0:0:1", RULES) == HostRule("::1", True)


@given(st.text(max_size=80))
def test_whatever_is_allowed_in_a_cluster_is_a_configured_host(url: str) -> None:
    try:
        parsed = check_repo_url(url, RULES, cluster=True)
    except RepoURLError as exc:
        assert exc.field == "repo"
        return
    rule = repohosts.find_rule(parsed.host, RULES)
    assert rule is not None
    assert parsed.scheme in ("https", "ssh") or (rule.insecure and parsed.scheme in ("http", "git"))


def test_the_module_needs_only_the_standard_library() -> None:
    """The runner imports it in the git containers: no pydantic, nothing of the server's."""
    code = ("import sys, mcp_server.repohosts; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'yaml', 'jinja2') "
            "or (m.startswith('mcp_server.') and m != 'mcp_server.repohosts')))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert json.loads(out.replace("'", '"')) == []
