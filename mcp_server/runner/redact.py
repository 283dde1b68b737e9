"""Redaction of secret values from everything the runner prints or reports.

The runner knows its secrets: the git token, the ssh private key, and the values of environment
variables whose names say they are secret (`*_KEY`, `*_TOKEN`, `*SECRET*`, `*PASSWORD*`, ...) or that
are listed in `AGENTIC_SECRET_ENV`. Each value (and each line of a multi-line value, and its
JSON-escaped form, since OpenCode's events are JSON) is replaced by `[REDACTED]`. Values shorter than
`MIN_SECRET_LENGTH` are ignored: they would blank out ordinary words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 6
SECRET_NAME_RE = re.compile(
    r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASS|CREDENTIALS?|PRIVATE_?KEY|AUTH)(_|$)|SECRET|PASSWORD",
    re.IGNORECASE,
)
# Names that match the pattern but hold no secret (paths, switches, public settings).
NOT_SECRET = frozenset(
    {
        "AGENTIC_GIT_AUTH",
        "AGENTIC_SECRET_ENV",
        "SSH_AUTH_SOCK",
        "GPG_KEY",  # the public key id Python's images set
        "PYTHON_GPG_KEY",
    }
)


def secret_env_names(environ: Mapping[str, str]) -> list[str]:
    """The names of the environment variables whose values are secrets."""
    listed = {n.strip() for n in environ.get("AGENTIC_SECRET_ENV", "").split(",") if n.strip()}
    by_name = {n for n in environ if n not in NOT_SECRET and SECRET_NAME_RE.search(n)}
    return sorted((listed | by_name) & set(environ))


class Redactor:
    """Replaces every known secret value in a text. Immutable; `with_values` makes a new one."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        needles: set[str] = set()
        for value in values:
            for candidate in _forms(value):
                if len(candidate) >= MIN_SECRET_LENGTH:
                    needles.add(candidate)
        self._needles = tuple(sorted(needles, key=len, reverse=True))
        self._pattern = re.compile("|".join(re.escape(n) for n in self._needles)) if self._needles else None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], extra: Iterable[str] = ()) -> Redactor:
        return cls([*(environ[n] for n in secret_env_names(environ)), *extra])

    def with_values(self, values: Iterable[str]) -> Redactor:
        return Redactor([*self._needles, *values])

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)

    def __len__(self) -> int:
        return len(self._needles)


def _forms(value: str) -> list[str]:
    value = value.strip()
    if not value:
        return []
    forms = [value, json.dumps(value)[1:-1]]
    if "\n" in value:
        forms += [line.strip() for line in value.splitlines()]
    return forms
