"""Names in one place: task ids, branches, repo URLs, Kubernetes object names, labels, selectors.

Every function that checks a user's input raises `InvalidInput` naming the field, what was wrong
and what is allowed, and never echoes a value that could carry a secret.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

from mcp_server.errors import InvalidInput

DOMAIN = "agentic-sdlc.dev"
MANAGED_BY = "agentic-sdlc-agent-runner"
COMPONENT = "agent-task"

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_TASK_ID = f"{DOMAIN}/task-id"
LABEL_FEATURE = f"{DOMAIN}/feature"
LABEL_ENVIRONMENT = f"{DOMAIN}/environment"

ANNOTATION_REPO = f"{DOMAIN}/repo"
ANNOTATION_BASE_BRANCH = f"{DOMAIN}/base-branch"
ANNOTATION_TASK_BRANCH = f"{DOMAIN}/task-branch"
ANNOTATION_DESCRIPTION = f"{DOMAIN}/description"
ANNOTATION_TASK_CONTEXT = f"{DOMAIN}/task-context"
ANNOTATION_FEATURE_DIR = f"{DOMAIN}/feature-dir"
ANNOTATION_SSH_SECRET = f"{DOMAIN}/ssh-secret"
LABEL_ATTEMPT = f"{DOMAIN}/attempt"
ANNOTATION_PREVIOUS_USAGE = f"{DOMAIN}/previous-usage"

# Task defaults the chart puts on its PodTemplate object.
TEMPLATE_ACTIVE_DEADLINE = f"{DOMAIN}/active-deadline-seconds"
TEMPLATE_TTL_AFTER_FINISHED = f"{DOMAIN}/ttl-seconds-after-finished"
TEMPLATE_BACKOFF_LIMIT = f"{DOMAIN}/backoff-limit"
TEMPLATE_BRANCH_PATTERN = f"{DOMAIN}/branch-pattern"
TEMPLATE_DEFAULT_BASE_BRANCH = f"{DOMAIN}/default-base-branch"
TEMPLATE_REPO_HOSTS = f"{DOMAIN}/repo-hosts"  # mcp_server.repohosts.ANNOTATION
TEMPLATE_GIT_SECRETS = f"{DOMAIN}/git-secrets"
GIT_CREDENTIALS_VOLUME = "git-credentials"

AGENT_CONTAINER = "agent"
RESULT_MARKER = "AGENTIC_RESULT: "

TASK_ID_MAX = 40
BRANCH_MAX = 200
REPO_MAX = 500
LABEL_MAX = 63

TASK_ID_ALLOWED = (
    f"1 to {TASK_ID_MAX} letters, digits, '-' or '_', starting and ending with a "
    "letter or digit (for example T012)"
)
BRANCH_ALLOWED = (
    f"a git branch name of at most {BRANCH_MAX} characters: letters, digits and "
    "'/', '-', '_', '.', '+', no '..', '//', '@{', no leading '-', '/' or '.', "
    "no trailing '/', '.' or '.lock'"
)
REPO_ALLOWED = (
    "an https://, ssh://, git:// or file:// URL or an scp-like git@host:path without "
    "a password or token in it (the pod authenticates with the chart's git secret)"
)
NAME_ALLOWED = (
    "1 to 128 letters, digits and '.', '_', '-', '/', ':', '@', '+', starting with a letter or digit"
)
SECRET_NAME_ALLOWED = "the name of a Kubernetes Secret: lowercase letters, digits, '-' and '.', at most 253"
ENVIRONMENT_ALLOWED = "a lowercase name of letters, digits and '-' (for example dev, stg, prod)"

_TASK_ID_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")
_SECRET_NAME_RE = re.compile(r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?")
_REMOTE_HELPER_RE = re.compile(r"[A-Za-z0-9+.-]*::")
_ENVIRONMENT_RE = re.compile(r"[a-z][a-z0-9-]{0,19}")
_BRANCH_CHAR_RE = re.compile(r"[A-Za-z0-9/._+-]+")
_SCP_LIKE_RE = re.compile(r"(?P<user>[A-Za-z0-9._-]+@)?(?P<host>[A-Za-z0-9.-]+):(?P<path>[^/].*)")
_USER_PASSWORD_RE = re.compile(r"[^/@:]*:[^/@]*@")
_REPO_SCHEMES = ("https", "http", "ssh", "git", "file")


def _check_length(value: str, field: str, limit: int, allowed: str) -> None:
    """Refuse a value that is not a string, is empty or is longer than `limit` characters."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(field, "it is empty", allowed)
    if len(value) > limit:
        raise InvalidInput(field, f"it is {len(value)} characters long", allowed)


def validate_task_id(value: str, field: str = "task_id") -> str:
    _check_length(value, field, TASK_ID_MAX, TASK_ID_ALLOWED)
    if not _TASK_ID_RE.fullmatch(value):
        raise InvalidInput(field, "it contains characters that are not allowed", TASK_ID_ALLOWED)
    return value


def validate_branch(value: str, field: str = "base_branch") -> str:
    """A branch name git accepts (`git check-ref-format --branch`), restricted to a safe alphabet."""
    _check_length(value, field, BRANCH_MAX, BRANCH_ALLOWED)
    if not _BRANCH_CHAR_RE.fullmatch(value):
        raise InvalidInput(
            field, "it contains characters that are not allowed in a branch name", BRANCH_ALLOWED
        )
    bad = (
        ".." in value
        or "//" in value
        or "@{" in value
        or value.startswith(("-", "/", "."))
        or value.endswith(("/", ".", ".lock"))
        or any(part.startswith(".") or part.endswith(".lock") for part in value.split("/"))
        or value == "@"
    )
    if bad:
        raise InvalidInput(field, "it is not a valid git branch name", BRANCH_ALLOWED)
    return value


def validate_repo_url(value: str, field: str = "repo") -> str:
    """A clone URL without credentials in it. The value is never echoed: it may hold a secret."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(field, "it is empty", REPO_ALLOWED)
    if len(value) > REPO_MAX or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidInput(field, "it is not a clone URL", REPO_ALLOWED)
    if _REMOTE_HELPER_RE.match(value):
        raise InvalidInput(field, "it names a git remote helper (such as ext:: or fd::)", REPO_ALLOWED)
    if "://" in value:
        try:
            parts = urlsplit(value)
        except ValueError:
            raise InvalidInput(field, "it is not a clone URL", REPO_ALLOWED) from None
        if parts.scheme not in _REPO_SCHEMES:
            raise InvalidInput(field, f"the scheme {parts.scheme!r} is not supported", REPO_ALLOWED)
        if parts.password is not None or (parts.username and parts.scheme in ("https", "http")):
            raise InvalidInput(
                field, "it contains embedded credentials (user:password@ or token@)", REPO_ALLOWED
            )
        if parts.query or parts.fragment:
            raise InvalidInput(field, "it has a query or fragment", REPO_ALLOWED)
        if parts.scheme != "file" and not parts.hostname:
            raise InvalidInput(field, "it has no host", REPO_ALLOWED)
        return value
    if _USER_PASSWORD_RE.match(value):
        raise InvalidInput(field, "it contains embedded credentials (user:password@ or token@)", REPO_ALLOWED)
    match = _SCP_LIKE_RE.fullmatch(value)
    if match is None or ":" in (match.group("user") or ""):
        raise InvalidInput(field, "it is not a clone URL", REPO_ALLOWED)
    return value


def validate_name(value: str, field: str) -> str:
    """A model or agent name such as `anthropic/claude-sonnet-4-5` or `build`."""
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise InvalidInput(field, "it is not a valid name", NAME_ALLOWED)
    return value


def validate_secret_name(value: str, field: str = "ssh_secret") -> str:
    if not isinstance(value, str) or not _SECRET_NAME_RE.fullmatch(value):
        raise InvalidInput(field, "it is not a Secret name", SECRET_NAME_ALLOWED)
    return value


def validate_environment_name(value: str, field: str = "environment") -> str:
    if not isinstance(value, str) or not _ENVIRONMENT_RE.fullmatch(value):
        raise InvalidInput(field, "it is not an environment name", ENVIRONMENT_ALLOWED)
    return value


def short_hash(*parts: str, length: int = 10) -> str:
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()
    return digest[:length]


def _slug(text: str, limit: int) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return slug[:limit].strip("-")


def job_name(task_id: str, base_branch: str, attempt: int = 1) -> str:
    """The deterministic Job name of a task on a feature branch (a DNS-1123 label, <= 63 chars);
    attempts after the first end in `-a<attempt>` (so racing retries name the same Job)."""
    if attempt <= 1:
        slug = _slug(task_id, 40) or "task"
        return f"agentic-{slug}-{short_hash(base_branch, task_id)}"
    slug = _slug(task_id, 36) or "task"
    return f"agentic-{slug}-{short_hash(base_branch, task_id)}-a{attempt}"


def attempt_of(labels: dict[str, str]) -> int:
    """The attempt number a Job's (or run's) labels carry; 1 when they carry none."""
    value = labels.get(LABEL_ATTEMPT, "")
    return int(value) if value.isdigit() and int(value) >= 1 else 1


def label_value(text: str) -> str:
    """`text` as a label value; when it had to be changed or cut, a hash of the original is appended."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-_.")
    if clean == text and len(text) <= LABEL_MAX:
        return text
    head = clean[: LABEL_MAX - 11].strip("-_.")
    return f"{head}-{short_hash(text)}" if head else short_hash(text)


def task_labels(task_id: str, base_branch: str, environment: str, attempt: int = 1) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPONENT: COMPONENT,
        LABEL_TASK_ID: task_id,
        LABEL_FEATURE: label_value(base_branch),
        LABEL_ENVIRONMENT: environment,
        LABEL_ATTEMPT: str(attempt),
    }


def selector(environment: str, task_id: str | None = None, base_branch: str | None = None) -> str:
    """A label selector for the tasks of an environment, optionally one task id / feature."""
    terms = [f"{LABEL_MANAGED_BY}={MANAGED_BY}", f"{LABEL_ENVIRONMENT}={environment}"]
    if task_id is not None:
        terms.append(f"{LABEL_TASK_ID}={task_id}")
    if base_branch is not None:
        terms.append(f"{LABEL_FEATURE}={label_value(base_branch)}")
    return ",".join(terms)


def render_branch(pattern: str, base_branch: str, task_id: str) -> str:
    """The task branch from a pattern such as `agentic/{base_branch}/{task_id}`, checked as a git branch."""
    if "{task_id}" not in pattern:
        raise InvalidInput(
            "branch pattern",
            "it does not contain {task_id}",
            "a pattern with {task_id} and optionally {base_branch}",
        )
    try:
        branch = pattern.format(base_branch=base_branch, task_id=task_id)
    except (KeyError, IndexError, ValueError):
        raise InvalidInput(
            "branch pattern",
            "it has placeholders other than {base_branch} and {task_id}",
            "a pattern with {task_id} and optionally {base_branch}",
        ) from None
    return validate_branch(branch, "task branch")
