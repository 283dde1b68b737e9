"""Which spec-kit feature directory a command means, found the way the fork's `common.sh`
(`get_feature_paths`) finds it: `SPECIFY_FEATURE_DIRECTORY`, then `feature_directory` of
`.specify/feature.json`, both relative to the repository root; then, as older spec-kit did, the
current branch: `specs/<branch>`, or the one `specs/<NNN>-*` directory with the branch's number.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from mcp_server import repo
from mcp_server.errors import InvalidInput

ENV_VAR = "SPECIFY_FEATURE_DIRECTORY"
FEATURE_JSON = Path(".specify") / "feature.json"
SPECS = "specs"
ALLOWED = (
    "a feature directory inside the repository (e.g. specs/001-feature); or set SPECIFY_FEATURE_DIRECTORY, "
    "or .specify/feature.json's feature_directory, or check out the feature branch"
)
_NUMBER = re.compile(r"(?:[^/]+/)?(?P<n>[0-9]{3,}|[0-9]{8}-[0-9]{6})-")


def _feature_json(root: Path) -> str | None:
    try:
        data = json.loads((root / FEATURE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("feature_directory") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def _by_branch(root: Path, branch: str | None) -> Path | None:
    if not branch:
        return None
    specs = root / SPECS
    exact = specs / branch.rsplit("/", 1)[-1]
    if exact.is_dir():
        return exact
    number = _NUMBER.match(branch)
    if number is None or not specs.is_dir():
        return None
    found = sorted(p for p in specs.iterdir() if p.is_dir() and p.name.startswith(number.group("n") + "-"))
    return found[0] if len(found) == 1 else None


def resolve(
    root: Path,
    given: str | None,
    environ: Mapping[str, str],
    branch: Callable[[], str | None],
    field: str = "feature",
) -> Path:
    """The feature directory (resolved, inside the repository); refused naming `field` when
    there is none or it is not a directory of the repository."""
    tried: list[str] = []
    for source, value in (
        (field, given),
        (ENV_VAR, environ.get(ENV_VAR) or None),
        (str(FEATURE_JSON), _feature_json(root)),
    ):
        if value is None:
            continue
        path = repo.inside(root, value, source)
        if not path.is_dir():
            raise InvalidInput(source, "it is not a directory of the repository", ALLOWED)
        return path
    found = _by_branch(root, branch())
    if found is not None:
        return repo.inside(root, str(found), field)
    tried = [ENV_VAR, str(FEATURE_JSON), f"{SPECS}/<current branch>"]
    raise InvalidInput(field, f"it was not given and none was found (tried {', '.join(tried)})", ALLOWED)
