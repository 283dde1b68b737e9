"""The `llm-proxy` container's entry point (`python -m mcp_server.runner.llmproxy`): give nginx the
LLM keys, then become nginx.

The chart renders nginx's configuration (ConfigMap `<fullname>-llm-proxy`: `nginx.conf`, and
`providers.json`, which header of which provider carries which key of the LLM Secret). No key is in
either. This launcher, as user 1002 in the only container that mounts the LLM Secret, writes one nginx
`map` per provider into its own emptyDir (`$llm_key_<n>`, mode 0600), copies nginx.conf beside it and
execs nginx in the foreground, listening on 127.0.0.1 only. The agent's container sends requests to
`http://127.0.0.1:<port>/<provider>/...` with a placeholder key; nginx replaces the key header and
forwards to the provider's configured upstream only (TLS verified, SNI set). Standard library only.

Messages name the Secret key, never its value."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_DIR = "/etc/agentic-sdlc/llm-proxy"
DEFAULT_SECRET_DIR = "/etc/agentic-sdlc/llm"
DEFAULT_RUN_DIR = "/tmp"
KEYS_FILE = "llm-proxy-keys.conf"
NGINX = "/usr/sbin/nginx"


class ProxyConfigError(Exception):
    pass


def _usable(value: str) -> bool:
    """A header value nginx can carry in a quoted string: printable ASCII without `"`, `\\` or `$`
    (nginx would read `$` as a variable)."""
    return bool(value) and all(32 <= ord(ch) < 127 and ch not in '"\\$' for ch in value)


def key_maps(providers: Sequence[Mapping[str, Any]], secret_dir: Path, warn) -> str:  # type: ignore[no-untyped-def]
    """The nginx `map`s defining `$llm_key_<index>` = valuePrefix + the Secret's key, per provider. A
    key that is missing or unusable gives an empty value (the provider answers 401) and a warning."""
    lines = ["# Written by mcp_server.runner.llmproxy from the LLM Secret. Never log or copy it."]
    for provider in providers:
        index, name, secret_key = int(provider["index"]), str(provider["name"]), str(provider["secretKey"])
        if "/" in secret_key or secret_key.startswith("."):
            raise ProxyConfigError(f"provider {name}: secretKey {secret_key!r} is not a key of a Secret")
        try:
            key = (secret_dir / secret_key).read_text(encoding="utf-8").strip()
        except OSError:
            key = ""
            warn(f"provider {name}: the LLM Secret has no key {secret_key} (llmProxy.providers[].secretKey); "
                 "requests go out without a key")
        value = str(provider.get("valuePrefix") or "") + key
        if key and not _usable(value):
            warn(f"provider {name}: the value of {secret_key} has characters a header cannot carry; "
                 "requests go out without a key")
            value = ""
        lines.append(f'map $host $llm_key_{index} {{ default "{value}"; }}')
    return "\n".join(lines) + "\n"


def prepare(config_dir: Path, secret_dir: Path, run_dir: Path, warn) -> Path:  # type: ignore[no-untyped-def]
    """Write the keys file and nginx.conf into `run_dir`; the path of the nginx.conf to run."""
    try:
        providers = json.loads((config_dir / "providers.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProxyConfigError(f"cannot read {config_dir / 'providers.json'}: {exc}") from None
    if not isinstance(providers, list) or not all(isinstance(p, dict) for p in providers):
        raise ProxyConfigError(f"{config_dir / 'providers.json'} is not a list of providers")
    maps = key_maps(providers, secret_dir, warn)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / KEYS_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, maps.encode("ascii"))
    finally:
        os.close(fd)
    conf = run_dir / "nginx.conf"
    shutil.copyfile(config_dir / "nginx.conf", conf)
    return conf


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    config_dir = Path(env.get("AGENTIC_LLM_PROXY_DIR") or DEFAULT_CONFIG_DIR)
    secret_dir = Path(env.get("AGENTIC_LLM_AUTH_DIR") or DEFAULT_SECRET_DIR)
    run_dir = Path(env.get("AGENTIC_LLM_PROXY_RUN") or DEFAULT_RUN_DIR)
    nginx = env.get("AGENTIC_NGINX_BIN") or NGINX

    def warn(message: str) -> None:
        print(f"llm-proxy: warning: {message}", file=sys.stderr, flush=True)

    try:
        conf = prepare(config_dir, secret_dir, run_dir, warn)
    except ProxyConfigError as exc:
        print(f"llm-proxy: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"llm-proxy: starting nginx with {conf}", file=sys.stderr, flush=True)
    os.execv(nginx, [nginx, "-e", "stderr", "-p", str(run_dir), "-c", str(conf), "-g", "daemon off;"])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
