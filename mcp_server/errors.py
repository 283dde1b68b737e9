"""Errors as values a user can act on: what was wrong, with which input, and what to do.

Every error the service raises is a `RunnerError`. Its message is complete on its own (the MCP
server passes it to the client as the tool error text, the CLI prints it), never a traceback and
never containing a secret. `exit_code` is what the CLI exits with: 2 for bad usage or input,
1 for everything else (not found, forbidden, failed).
"""

from __future__ import annotations

from typing import ClassVar


class RunnerError(Exception):
    """Base of every error the service reports to a user."""

    kind: ClassVar[str] = "error"
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(RunnerError):
    """One input field was refused (and nothing was done)."""

    kind = "invalid_input"
    exit_code = 2

    def __init__(self, field: str, problem: str, allowed: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.allowed = allowed
        text = f"invalid {field}: {problem}"
        if allowed:
            text += f"; allowed: {allowed}"
        super().__init__(text + ".")


class ConfigError(RunnerError):
    """The configuration (file or environment variables) cannot be used."""

    kind = "config"
    exit_code = 2


class TaskNotFound(RunnerError):
    kind = "not_found"

    @classmethod
    def in_namespace(
        cls, task_ids: list[str], environment: str, namespace: str, base_branch: str | None = None
    ) -> TaskNotFound:
        on = f" on base branch {base_branch!r}" if base_branch else ""
        return cls(
            f"no task {', '.join(task_ids)}{on} in environment {environment!r} (namespace {namespace!r}). "
            "list_agents shows the tasks that exist."
        )


class Forbidden(RunnerError):
    """The Kubernetes identity lacks a permission. Names the verb, resource and namespace."""

    kind = "forbidden"

    def __init__(
        self, verb: str, resource: str, namespace: str, user: str | None = None, hint: str | None = None
    ) -> None:
        self.verb = verb
        self.resource = resource
        self.namespace = namespace
        self.user = user
        who = f"user {user!r}" if user else "the current Kubernetes identity"
        text = (
            f"forbidden: {who} may not {verb} {resource} in namespace {namespace!r} "
            f"(missing RBAC permission: verb {verb!r} on resource {resource!r})"
        )
        text += ". " + (hint or "Ask a cluster admin to grant it")
        super().__init__(text + ".")


class Conflict(RunnerError):
    """The request collides with an existing object that is not the same task."""

    kind = "conflict"


class BackendUnavailable(RunnerError):
    """The backend (API server, local runner) cannot be reached or answered with an error."""

    kind = "unavailable"
