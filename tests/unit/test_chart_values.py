"""Plain-data checks of chart/values.yaml and chart/values.schema.json: every value documented,
defaults and schema describing the same keys, and unknown keys rejected at every level."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

from tests.support.chart import CHART_DIR, CHART_NAME, ENVIRONMENTS, release_dir

# Maps whose keys are the user's (labels, selectors, Kubernetes objects passed through).
FREE_FORM = {
    ".global", ".namespace.labels", ".namespace.annotations", ".resources.requests", ".resources.limits",
    ".sidecarResources.requests", ".sidecarResources.limits",
    ".nodeSelector", ".affinity", ".tolerations[]", ".podAnnotations", ".podLabels",
    ".extraEnv[].valueFrom", ".serviceAccount.annotations", ".networkPolicy.dns.to[]",
}

KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):")


def undocumented_keys(text: str) -> list[str]:
    """Keys of a values.yaml neither documented themselves (a `# --` comment block right above)
    nor by an ancestor, in the manner of helm-docs. Content of list items is the value, not keys."""
    missing: list[str] = []
    stack: list[tuple[int, str, bool]] = []  # (indent, key, documented)
    comment_block: list[str] = []
    list_indent: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if list_indent is not None and stripped and indent >= list_indent:
            continue
        list_indent = None
        if not stripped:
            comment_block = []
            continue
        if stripped.startswith("#"):
            comment_block.append(stripped)
            continue
        if stripped.startswith("- "):
            list_indent = indent
            comment_block = []
            continue
        match = KEY_LINE.match(line)
        if not match:
            comment_block = []
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        own = bool(comment_block) and comment_block[0].startswith("# --")
        documented = own or any(doc for _, _, doc in stack)
        path = ".".join([k for _, k, _ in stack] + [match["key"]])
        if not documented and not line.rstrip().endswith(":"):
            missing.append(path)
        stack.append((indent, match["key"], documented))
        comment_block = []
    return missing


def leaf_paths(node: Any, path: str = "") -> Iterator[str]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaf_paths(value, f"{path}.{key}")
    else:
        yield path


def schema_node(schema: dict[str, Any], path: str) -> dict[str, Any] | None:
    node = schema
    for part in path.strip(".").split("."):
        props = node.get("properties")
        if props is None or part not in props:
            return None
        node = props[part]
    return node


def object_schemas(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if node.get("type") == "object":
        yield path, node
    for key, sub in (node.get("properties") or {}).items():
        yield from object_schemas(sub, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from object_schemas(node["items"], f"{path}[]")


def load_values() -> dict[str, Any]:
    return yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))


def load_schema() -> dict[str, Any]:
    return json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))


def test_every_value_is_documented() -> None:
    assert undocumented_keys((CHART_DIR / "values.yaml").read_text(encoding="utf-8")) == []


def test_the_documentation_check_finds_an_undocumented_value() -> None:
    text = "# -- documented\na: 1\nb:\n  # -- yes\n  c: 2\n  d: 3\ne:\n  - x: 1\n"
    assert undocumented_keys(text) == ["b.d"]


def test_every_default_value_is_in_the_schema() -> None:
    schema = load_schema()
    missing = []
    for path in leaf_paths(load_values()):
        parents = [path.rsplit(".", n)[0] for n in range(path.count("."))]
        if any(p in FREE_FORM for p in [path, *parents]):
            continue
        if schema_node(schema, path) is None:
            missing.append(path)
    assert missing == []


def test_every_schema_property_has_a_default() -> None:
    values = load_values()

    def walk(node: dict[str, Any], data: Any, path: str) -> Iterator[str]:
        for key, sub in (node.get("properties") or {}).items():
            if f"{path}.{key}" == ".global":
                continue
            if not isinstance(data, dict) or key not in data:
                yield f"{path}.{key}"
            elif sub.get("type") == "object":
                yield from walk(sub, data[key], f"{path}.{key}")

    assert list(walk(load_schema(), values, "")) == []


def test_every_object_in_the_schema_rejects_unknown_keys() -> None:
    open_objects = [
        path for path, node in object_schemas(load_schema())
        if path and path not in FREE_FORM and node.get("additionalProperties") is not False
    ]
    assert open_objects == []
    root = load_schema()
    assert root["additionalProperties"] is False


def test_git_auth_allows_exactly_ssh_token_none() -> None:
    assert schema_node(load_schema(), ".git.auth")["enum"] == ["ssh", "token", "none"]


def test_release_values_only_configure_the_chart() -> None:
    for env in ENVIRONMENTS:
        values = yaml.safe_load((release_dir(env) / "values.yaml").read_text(encoding="utf-8"))
        assert list(values) == [CHART_NAME], env
        sub = values[CHART_NAME]
        assert sub["environment"] == env
        assert sub["namespace"]["name"] == f"agent-runner-{env}"


def test_readme_values_table_covers_every_value() -> None:
    readme = (CHART_DIR / "README.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))
    missing = []
    for path in leaf_paths(load_values()):
        parts = path.strip(".").split(".")
        if not any(".".join(parts[:n]) in rows for n in range(1, len(parts) + 1)):
            missing.append(path)
    assert missing == []
