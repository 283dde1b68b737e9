"""Which repository URLs a task may clone from and push to: the hosts an environment allows.

Standard library only: the runner's git containers import it (they enforce again what the server
checked before it created anything). The rules come from the chart's values `git.hosts`, passed to
the git containers as the env `AGENTIC_REPO_HOSTS` and to the server as the PodTemplate annotation
`agentic-sdlc.dev/repo-hosts`, both a JSON list of `{"host": ..., "insecure": bool}`.

- `https://`, `ssh://` and scp-like `[user@]host:path` reach the hosts listed;
- `http://` and `git://` (no TLS, no authentication of the server) only hosts marked `insecure`;
- `file://`, local paths and git's remote helpers (`ext::` runs a command, `fd::` a descriptor) never
  in a cluster; the local backend may clone a local path or `file://` (remote helpers: never);
- credentials in the URL never (the credential lives in the git containers, not in the URL).

Messages name the field `repo` and what is allowed, and never repeat the URL (it may hold a token).
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

FIELD = "repo"
REPO_MAX = 500
SECURE_SCHEMES = ("https", "ssh")
INSECURE_SCHEMES = ("http", "git")
LOCAL_SCHEMES = ("file",)
ANNOTATION = "agentic-sdlc.dev/repo-hosts"
ENV = "AGENTIC_REPO_HOSTS"

_HOST_RE = re.compile(r"(?=.{1,253}\Z)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")
_SCP_LIKE_RE = re.compile(r"(?:(?P<user>[^@/:]+)@)?(?P<host>[A-Za-z0-9.-]+):(?P<path>.*)", re.DOTALL)
_REMOTE_HELPER_RE = re.compile(r"[A-Za-z0-9+.-]*::")
_USER_RE = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]*")
_USER_PASSWORD_RE = re.compile(r"[^/@:]*:[^/@]*@")
CREDENTIALS = "it contains embedded credentials (user:password@ or token@)"
USER_PROBLEM = "its ssh user name is not allowed (letters, digits, '.', '_', '-', not starting with '-')"
_URL_SCHEME_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")


class RepoURLError(ValueError):
    """A refused repo URL or host rule: `field`, `problem`, `allowed` (as `InvalidInput` has them)."""

    def __init__(self, field: str, problem: str, allowed: str) -> None:
        self.field = field
        self.problem = problem
        self.allowed = allowed
        super().__init__(f"invalid {field}: {problem}; allowed: {allowed}.")


@dataclass(frozen=True)
class HostRule:
    """A host tasks may reach. `insecure`: plain `http://` and `git://` are allowed too (tests)."""

    host: str
    insecure: bool = False


@dataclass(frozen=True)
class ParsedRepo:
    """A checked repo URL. `scheme` is `ssh` for scp-like URLs and `file` for local paths (where
    `host` is empty); `port` is None when the URL names none."""

    scheme: str
    host: str
    port: int | None
    path: str


# -- the rules -------------------------------------------------------------------------------------


def normalize_host(host: str) -> str | None:
    """`host` lowercased (an IPv6 address in its compressed form), or None when it is not a DNS name
    or an IP address."""
    if not isinstance(host, str):
        return None
    text = host.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    return text if _HOST_RE.fullmatch(text) else None


RULES_ALLOWED = 'a JSON list of {"host": "<DNS name or IP address>", "insecure": true|false}'


def parse_rules(text: str, *, source: str = "repo hosts") -> tuple[HostRule, ...]:
    """The rules in `text` (JSON). A RepoURLError names `source` (the env var, annotation or value
    they came from) and what is wrong; hosts are lowercased; duplicates are refused."""

    def refuse(problem: str) -> RepoURLError:
        return RepoURLError(source, problem, RULES_ALLOWED)

    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        raise refuse("it is not JSON") from None
    if not isinstance(data, list):
        raise refuse("it is not a list")
    rules: list[HostRule] = []
    for index, item in enumerate(data):
        if not isinstance(item, dict) or set(item) - {"host", "insecure"}:
            raise refuse(f"entry {index} is not an object with the keys host and insecure")
        host = normalize_host(item.get("host"))  # type: ignore[arg-type]
        if host is None:
            raise refuse(f"entry {index}: host is not a DNS name or an IP address")
        insecure = item.get("insecure", False)
        if not isinstance(insecure, bool):
            raise refuse(f"entry {index}: insecure is not true or false")
        if any(rule.host == host for rule in rules):
            raise refuse(f"entry {index}: host {host} is listed twice")
        rules.append(HostRule(host, insecure))
    return tuple(rules)


def rules_json(rules: tuple[HostRule, ...]) -> str:
    """`rules` as the JSON `parse_rules` reads."""
    return json.dumps([{"host": r.host, "insecure": r.insecure} for r in rules], separators=(",", ":"))


def find_rule(host: str, rules: tuple[HostRule, ...]) -> HostRule | None:
    """The rule of `host` (exact match, case-insensitive), or None."""
    wanted = normalize_host(host)
    return next((rule for rule in rules if rule.host == wanted), None) if wanted else None


# -- the check -------------------------------------------------------------------------------------


def allowed_text(rules: tuple[HostRule, ...], *, cluster: bool) -> str:
    """What `check_repo_url` allows with these rules, in words (host names are not secret)."""
    secure = ", ".join(r.host for r in rules) or "none configured"
    insecure = ", ".join(r.host for r in rules if r.insecure)
    text = f"an https:// or ssh:// URL or scp-like [user@]host:path to a configured host ({secure})"
    if insecure:
        text += f"; http:// and git:// only to the hosts marked insecure ({insecure})"
    else:
        text += "; no host is marked insecure, so no http:// or git://"
    if not cluster:
        text += "; or a local path or file:// URL"
    return text + "; no user:password@ or token@ in it (the git secret authenticates)"


def check_repo_url(url: str, rules: tuple[HostRule, ...], *, cluster: bool) -> ParsedRepo:
    """`url` parsed, when these rules allow it; else a RepoURLError naming the field `repo`.

    `cluster`: the task runs in a pod (no local paths, no `file://`)."""
    allowed = allowed_text(rules, cluster=cluster)

    def refuse(problem: str) -> RepoURLError:
        return RepoURLError(FIELD, problem, allowed)

    if not isinstance(url, str) or not url:
        raise refuse("it is empty")
    if len(url) > REPO_MAX:
        raise refuse(f"it is {len(url)} characters long (at most {REPO_MAX})")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise refuse("it contains white space or control characters")
    if _REMOTE_HELPER_RE.match(url):
        raise refuse("it names a git remote helper (<transport>::<address>, such as ext:: or fd::), "
                     "which runs commands or reads descriptors")
    if _URL_SCHEME_RE.match(url):
        parsed = _check_url(url, refuse, cluster=cluster)
    elif _is_local_path(url):
        if cluster:
            raise refuse("it is a local path, which a pod cannot clone")
        return ParsedRepo("file", "", None, url)
    else:
        parsed = _check_scp_like(url, refuse)
    if parsed.scheme == "file":
        return parsed
    rule = find_rule(parsed.host, rules)
    if rule is None:
        raise refuse(f"the host {parsed.host} is not one of the configured repo hosts")
    if parsed.scheme in INSECURE_SCHEMES and not rule.insecure:
        raise refuse(f"{parsed.scheme}:// is not allowed for the host {parsed.host}, which is not marked insecure")
    return parsed


def _is_local_path(url: str) -> bool:
    """git's rule: no `://`, and no `:` before the first `/` (else it is scp-like)."""
    colon = url.find(":")
    slash = url.find("/")
    return colon < 0 or (0 <= slash < colon)


def _check_url(url: str, refuse, *, cluster: bool) -> ParsedRepo:  # type: ignore[no-untyped-def]
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError:
        raise refuse("it is not a valid URL (bad host or port)") from None
    scheme = parts.scheme.lower()
    if scheme in LOCAL_SCHEMES:
        if cluster:
            raise refuse("file:// names a path on the machine, which a pod cannot clone")
        if parts.netloc not in ("", "localhost"):
            raise refuse("a file:// URL names a host")
        if parts.query or parts.fragment or not parts.path:
            raise refuse("it is not a file:// URL of a path")
        return ParsedRepo("file", "", None, parts.path)
    if scheme not in SECURE_SCHEMES + INSECURE_SCHEMES:
        raise refuse(f"the scheme {scheme}:// is not allowed")
    if parts.password is not None or (parts.username is not None and scheme != "ssh"):
        raise refuse(CREDENTIALS)
    if parts.username is not None and not _USER_RE.fullmatch(parts.username):
        raise refuse(CREDENTIALS if "@" in parts.username else USER_PROBLEM)
    if parts.query or parts.fragment:
        raise refuse("it has a query or fragment")
    host = normalize_host(parts.hostname or "")
    if host is None:
        raise refuse("it has no host, or its host is not a DNS name or an IP address")
    path = parts.path
    if not path.strip("/"):
        raise refuse("it names no repository path")
    return ParsedRepo(scheme, host, port, path)


def _check_scp_like(url: str, refuse) -> ParsedRepo:  # type: ignore[no-untyped-def]
    if url.startswith("["):
        raise refuse("a bracketed scp-like host is not supported (write ssh://user@[address]/path)")
    if _USER_PASSWORD_RE.match(url):
        raise refuse(CREDENTIALS)
    match = _SCP_LIKE_RE.fullmatch(url)
    if match is None:
        raise refuse("it is not a clone URL")
    user, raw_host, path = match.group("user"), match.group("host"), match.group("path")
    if user is not None and not _USER_RE.fullmatch(user):
        raise refuse(USER_PROBLEM)
    host = normalize_host(raw_host)
    if host is None or raw_host.startswith("-"):
        raise refuse("its host is not a DNS name or an IP address")
    if not path.strip("/") or path.startswith("-"):
        raise refuse("it names no repository path (or one starting with '-')")
    return ParsedRepo("ssh", host, None, path)
