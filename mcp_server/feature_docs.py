"""The design documents of a spec-kit feature that go along with its tasks: those of `spec.md`,
`plan.md`, `data-model.md`, `research.md`, `quickstart.md`, `contracts/` (every file in it) and
`tasks.md` that exist, in that order, within a size budget. A document that does not fit whole is
cut, and one that does not fit at all is named; either way the agent is told where to read the rest
(its clone has every file)."""

from __future__ import annotations

import json
from pathlib import Path

from mcp_server import repo
from mcp_server.errors import InvalidInput
from mcp_server.runner.contract import ContextFile

DESIGN_DOCS = ("spec.md", "plan.md", "data-model.md", "research.md", "quickstart.md")
CONTRACTS = "contracts"
TASKS = "tasks.md"
NOTE_RESERVE = 400
"""Bytes kept free for the note of a cut document."""


def _json_size(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8"))


def document_paths(feature_dir: Path) -> list[Path]:
    """The feature's design documents that exist, in the order they go along."""
    paths = [feature_dir / name for name in DESIGN_DOCS]
    contracts = feature_dir / CONTRACTS
    if contracts.is_dir():
        paths += sorted(p for p in contracts.rglob("*") if p.is_file())
    paths.append(feature_dir / TASKS)
    return [p for p in paths if p.is_file()]


def _cut(text: str, limit: int) -> str:
    """At most `limit` bytes of `text` (JSON-encoded), at a line end where there is one."""
    data = text.encode("utf-8")
    lo, hi = 0, len(data)
    while lo < hi:  # the longest prefix whose JSON form fits
        mid = (lo + hi + 1) // 2
        if _json_size(data[:mid].decode("utf-8", errors="ignore")) <= limit:
            lo = mid
        else:
            hi = mid - 1
    head = data[:lo].decode("utf-8", errors="ignore")
    return head[: head.rfind("\n") + 1] if "\n" in head else head


def bundle(root: Path, feature_dir: Path, budget: int, file_max: int, skip: set[str]) -> list[ContextFile]:
    """The documents as context files, at most `file_max` bytes each and `budget` bytes (as JSON)
    in all; paths in `skip` are left out (they go along already)."""
    files: list[ContextFile] = []
    left = budget
    for path in document_paths(feature_dir):
        try:
            resolved = repo.inside(root, str(path), "feature_dir")
            data = resolved.read_bytes()
            text = data.decode("utf-8")
        except (InvalidInput, OSError, UnicodeDecodeError):
            continue  # outside the repository through a symlink, unreadable or not text
        rel = resolved.relative_to(root.resolve()).as_posix()
        if rel in skip:
            continue
        size = _json_size(text)
        if size <= min(left, file_max):
            content = text
        else:
            room = min(left, file_max) - NOTE_RESERVE
            head = _cut(text, room) if room > 0 else ""
            if head:
                content = (
                    f"{head}\n[... cut: {rel} has {len(data)} bytes, only the first {len(head.encode())} are "
                    "here (the size limit of a task). Read the whole file in your checkout.]\n"
                )
            else:
                content = (
                    f"[{rel} is not included: {len(data)} bytes do not fit the size limit of a task. "
                    "Read it in your checkout.]\n"
                )
        cost = _json_size(content) + _json_size(rel) + 32
        if cost > left:
            break
        left -= cost
        files.append(ContextFile(path=rel, content=content))
    return files
