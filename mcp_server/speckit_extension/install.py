"""`agentic-runner speckit install`: the extension in this directory installed into a spec-kit
project the way the fork's `specify extension add --dev <dir>` lays it out for OpenCode:

- `.specify/extensions/agentic-runner/` — a copy of the extension (manifest, commands, README);
- `.specify/extensions/.registry` — its entry (version, source `local`, manifest hash, enabled,
  priority, registered commands, installed_at kept across reinstalls);
- `.specify/extensions.yml` — `installed` and the manifest's hooks (`before_implement`, ...), each with
  `extension`, `command`, `enabled`, `optional`, `priority`, `prompt`, `description`, `condition`;
  other extensions' entries are kept;
- `.opencode/commands/<command>.md` — each command for OpenCode (`/speckit.agentic-runner.delegate`).

Reinstalling gives the same files. A directory without `.specify/` is not a spec-kit project and is
refused before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import yaml

from mcp_server.errors import InvalidInput
from mcp_server.tasks_meta import write_atomic

EXTENSION_ID = "agentic-runner"
COMMAND_NAME = re.compile(r"speckit\.[a-z0-9-]+\.[a-z0-9-]+")
SHIPPED = ("extension.yml", "README.md", "commands")
OPENCODE_COMMANDS = Path(".opencode") / "commands"
DEFAULT_PRIORITY = 10


def source_dir() -> Path:
    """The extension as the package carries it."""
    return Path(str(resources.files("mcp_server") / "speckit_extension"))


def load_manifest(directory: Path) -> dict[str, Any]:
    manifest = yaml.safe_load((directory / "extension.yml").read_text(encoding="utf-8"))
    ext = manifest.get("extension", {})
    if ext.get("id") != EXTENSION_ID or not re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", str(ext.get("version"))):
        raise InvalidInput("extension.yml", "its extension id or version is not valid", "id agentic-runner, X.Y.Z")
    for command in manifest.get("provides", {}).get("commands", []):
        if not COMMAND_NAME.fullmatch(command["name"]) or not command["name"].startswith(f"speckit.{EXTENSION_ID}."):
            raise InvalidInput("extension.yml", f"command {command['name']!r} is not namespaced", "speckit.<id>.<cmd>")
        if not (directory / command["file"]).resolve().is_relative_to(directory.resolve()):
            raise InvalidInput(
                "extension.yml", f"command file {command['file']!r} leaves the extension", "a path inside it"
            )
    return manifest


def _frontmatter(text: str) -> tuple[dict[str, Any], str]:
    if not text.startswith("---\n"):
        return {}, text
    head, _, body = text[4:].partition("\n---\n")
    return yaml.safe_load(head) or {}, body


def render_for_opencode(text: str) -> str:
    """A command file as OpenCode reads it: frontmatter with its description, the body as is."""
    meta, body = _frontmatter(text)
    head = yaml.safe_dump({"description": meta.get("description", "")}, sort_keys=False, width=1000)
    marks = f"<!-- Extension: {EXTENSION_ID} -->\n<!-- Config: .specify/extensions/{EXTENSION_ID}/ -->\n"
    return f"---\n{head}---\n\n{marks}{body}"


def _hook_entries(manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    hooks: dict[str, list[dict[str, Any]]] = {}
    for event, config in (manifest.get("hooks") or {}).items():
        entries = config if isinstance(config, list) else [config]
        hooks[event] = [
            {
                "extension": EXTENSION_ID,
                "command": e["command"],
                "enabled": True,
                "optional": e.get("optional", True),
                "priority": e.get("priority", DEFAULT_PRIORITY),
                "prompt": e.get("prompt", f"Execute {e['command']}?"),
                "description": e.get("description", ""),
                "condition": e.get("condition"),
            }
            for e in entries
        ]
    return hooks


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class Installed:
    root: Path
    files: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)


def install(target: Path, source: Path | None = None) -> Installed:
    """Install the extension into the spec-kit project at `target`."""
    root = target.resolve()
    if not (root / ".specify").is_dir():
        raise InvalidInput(
            "repo",
            f"{root} is not a spec-kit project (it has no .specify/ directory)",
            "a repository initialised with `specify init` (or with a .specify/ directory)",
        )
    source = source or source_dir()
    manifest = load_manifest(source)
    done = Installed(root)

    dest = root / ".specify" / "extensions" / EXTENSION_ID
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in SHIPPED:
        item = source / name
        if item.is_dir():
            shutil.copytree(item, dest / name)
        else:
            shutil.copy2(item, dest / name)
    done.files.append(str(dest.relative_to(root)) + "/")

    commands_dir = root / OPENCODE_COMMANDS
    commands_dir.mkdir(parents=True, exist_ok=True)
    for command in manifest["provides"]["commands"]:
        path = commands_dir / f"{command['name']}.md"
        write_atomic(path, render_for_opencode((source / command["file"]).read_text(encoding="utf-8")))
        done.commands.append(command["name"])
        done.files.append(str(path.relative_to(root)))

    registry_path = root / ".specify" / "extensions" / ".registry"
    registry = _read_json(registry_path) or {"schema_version": "1.0", "extensions": {}}
    extensions = registry.setdefault("extensions", {})
    before = extensions.get(EXTENSION_ID) or {}
    extensions[EXTENSION_ID] = {
        "version": manifest["extension"]["version"],
        "source": "local",
        "manifest_hash": "sha256:" + hashlib.sha256((source / "extension.yml").read_bytes()).hexdigest(),
        "enabled": True,
        "priority": DEFAULT_PRIORITY,
        "registered_commands": {"opencode": done.commands},
        "registered_skills": [],
        "installed_at": before.get("installed_at") or datetime.now(UTC).isoformat(),
    }
    write_atomic(registry_path, json.dumps(registry, indent=2) + "\n")
    done.files.append(str(registry_path.relative_to(root)))

    config_path = root / ".specify" / "extensions.yml"
    config = _read_yaml(config_path)
    installed = [i for i in config.get("installed") or [] if isinstance(i, str) and i != EXTENSION_ID]
    config["installed"] = [*installed, EXTENSION_ID]
    hooks = {
        event: [h for h in entries if isinstance(h, dict) and h.get("extension") != EXTENSION_ID]
        for event, entries in (config.get("hooks") or {}).items()
        if isinstance(entries, list)
    }
    for event, entries in _hook_entries(manifest).items():
        hooks.setdefault(event, []).extend(entries)
        done.hooks += [f"{event}: {e['command']}" for e in entries]
    config["hooks"] = {event: entries for event, entries in hooks.items() if entries}
    write_atomic(config_path, yaml.safe_dump(config, sort_keys=False))
    done.files.append(str(config_path.relative_to(root)))
    return done


def install_command(target: str, output: str | None, out: TextIO, err: TextIO) -> int:
    try:
        done = install(Path(target))
    except InvalidInput as exc:
        err.write(f"agentic-runner: {exc}\n")
        return exc.exit_code
    if output == "json":
        out.write(json.dumps({"root": str(done.root), **{k: getattr(done, k) for k in ("files", "commands", "hooks")}},
                             indent=2) + "\n")
        return 0
    out.write(f"installed the spec-kit extension {EXTENSION_ID} into {done.root}\n")
    for command in done.commands:
        out.write(f"  command  /{command}\n")
    for hook in done.hooks:
        out.write(f"  hook     {hook}\n")
    out.write("Run /speckit.implement (or /adlc.spec.implement) in OpenCode: its before_implement hook hands the "
              "[ASYNC] tasks to the agents.\n")
    return 0
