"""The test API server's audit log (testenv/audit-policy.yaml: every request of the test identities,
developer and stranger, at Metadata level): what a test or a benchmark counts the requests of one
operation with. Take a `mark()` before the operation and read `since(mark)` after it."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Request:
    """One audited request (its last stage: ResponseComplete, or ResponseStarted for a stream still open)."""

    audit_id: str
    user: str
    verb: str
    resource: str  # e.g. "jobs", "pods/log"
    namespace: str | None
    uri: str
    code: int | None

    @property
    def kind(self) -> str:
        """`verb resource`, e.g. `list jobs`, `get pods/log`."""
        return f"{self.verb} {self.resource}"


@dataclass(frozen=True)
class AuditLog:
    path: Path

    @classmethod
    def of(cls, state_dir: Path) -> AuditLog:
        return cls(state_dir / "logs" / "audit.log")

    def mark(self) -> int:
        """Where the log ends now."""
        return self.path.stat().st_size if self.path.exists() else 0

    def since(self, mark: int, user: str | None = None, namespace: str | None = None) -> list[Request]:
        """The requests logged after `mark` (one per audit id, in order), of `user` and `namespace`."""
        with self.path.open("rb") as f:
            f.seek(mark)
            data = f.read()
        found: dict[str, Request] = {}
        for raw in data.splitlines():
            try:
                event = json.loads(raw)
            except ValueError:
                continue  # a line being written
            ref = event.get("objectRef") or {}
            resource = str(ref.get("resource") or event.get("requestURI", "?"))
            if ref.get("subresource"):
                resource += f"/{ref['subresource']}"
            request = Request(
                audit_id=str(event["auditID"]),
                user=str(event.get("user", {}).get("username", "")),
                verb=str(event.get("verb", "")),
                resource=resource,
                namespace=ref.get("namespace"),
                uri=str(event.get("requestURI", "")),
                code=(event.get("responseStatus") or {}).get("code"),
            )
            if (user is None or request.user == user) and (namespace is None or request.namespace == namespace):
                found[request.audit_id] = request
        return list(found.values())


def count_by_kind(requests: list[Request]) -> dict[str, int]:
    """How many requests of each `verb resource`."""
    return dict(sorted(Counter(r.kind for r in requests).items()))
