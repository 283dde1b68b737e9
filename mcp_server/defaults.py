"""Task defaults from the one place they are documented: the chart's `values.yaml`.

The Kubernetes backend reads an environment's defaults from its chart release (the PodTemplate's
annotations); where there is no release (the local backend, a runner started by hand) the same
defaults come from the chart's own values.yaml, shipped in the package as `chart_values.yaml`
(a link to `chart/values.yaml` in the source tree, a copy in a built wheel). Nothing here is a
second copy of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

VALUES_FILE = "chart_values.yaml"


@dataclass(frozen=True)
class ChartDefaults:
    timeout_seconds: int
    branch_pattern: str
    base_branch: str
    backoff_limit: int
    model: str | None
    agent: str
    author_name: str
    author_email: str
    repo_hosts: str = "[]"
    """`git.hosts` as the JSON `mcp_server.repohosts.parse_rules` reads."""
    max_cost: float | None = None
    max_tokens: int | None = None
    idle_timeout_seconds: float | None = None


def _get(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            raise KeyError(f"the chart's values.yaml has no {path}")
        node = node[key]
    return node


@cache
def chart_defaults() -> ChartDefaults:
    import yaml  # here, not at start-up: only a runner or local task without the chart's env needs it

    text = (resources.files("mcp_server") / VALUES_FILE).read_text(encoding="utf-8")
    values = yaml.safe_load(text)
    return ChartDefaults(
        timeout_seconds=int(_get(values, "task.timeoutSeconds")),
        branch_pattern=str(_get(values, "task.branchPattern")),
        base_branch=str(_get(values, "task.baseBranch")),
        backoff_limit=int(_get(values, "task.backoffLimit")),
        model=str(_get(values, "opencode.model")) or None,
        agent=str(_get(values, "opencode.agent")),
        author_name=str(_get(values, "git.author.name")),
        author_email=str(_get(values, "git.author.email")),
        repo_hosts=json.dumps([{"host": h["host"], "insecure": bool(h.get("insecure", False))}
                               for h in _get(values, "git.hosts")]),
        max_cost=float(_get(values, "task.budget.maxCost")) or None,
        max_tokens=int(_get(values, "task.budget.maxTokens")) or None,
        idle_timeout_seconds=float(_get(values, "task.idleTimeoutSeconds")) or None,
    )
