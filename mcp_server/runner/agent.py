"""OpenCode, run headless: `opencode run --format json` in the checkout, the prompt on stdin, its
JSON events passed through to stdout line by line (redacted), stoppable at any moment.

OpenCode exits 0 even when a tool failed, so the outcome is read from the events: an `error` event
fails the task; the last `text` part is the summary.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_server.errors import ConfigError
from mcp_server.runner.gitrepo import GIT_ONLY_ENV
from mcp_server.runner.output import Output

# Always on: no self-update, no sharing, no downloads of language servers, no title model call, and
# no project config: the cloned repository's opencode.json / .opencode/ (plugins, MCP servers,
# providers, agents, commands) is the agent's input, never its configuration.
FORCED_ENV = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_PROJECT_CONFIG": "1",
}
LLM_PROXY_ENV = "AGENTIC_LLM_PROXY"
"""`{"<OpenCode provider id>": "http://127.0.0.1:<port>/<id>"}`: the pod's LLM proxy (the chart's llmProxy)."""
PROXY_API_KEY = "agentic-llm-proxy"
"""What OpenCode sends as its key: the proxy replaces it with the real one, which the agent never has."""
# Defaults an operator may override through the pod's env.
DEFAULT_ENV = {"OPENCODE_DISABLE_MODELS_FETCH": "1"}
FORCED_CONFIG: dict[str, Any] = {
    "autoupdate": False,
    "share": "disabled",
    "agent": {"title": {"disable": True}},
}
STOP_WAIT_SECONDS = 5.0
LEFTOVER_WAIT_SECONDS = 2.0


@dataclass(frozen=True)
class AgentOutcome:
    exit_code: int | None
    summary: str
    error: str | None
    stopped: bool
    events: int


def deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def opencode_env(environ: Mapping[str, str], checkout: Path,
                 operator_config: Mapping[str, Any]) -> dict[str, str]:
    """The agent's environment: the runner's minus git credentials, plus OpenCode's switches and
    the inline config (operator's AGENTIC_OPENCODE_CONFIG, then the runner's fixed keys)."""
    env = {
        k: v for k, v in environ.items()
        if k not in GIT_ONLY_ENV and not k.startswith("GIT_CONFIG_") and k != "AGENTIC_GIT_USERNAME"
    }
    for key, value in DEFAULT_ENV.items():
        env.setdefault(key, value)
    env.update(FORCED_ENV)
    inline: dict[str, Any] = {}
    if env.get("OPENCODE_CONFIG_CONTENT"):
        try:
            inline = json.loads(env["OPENCODE_CONFIG_CONTENT"])
        except json.JSONDecodeError:
            inline = {}
    base = inline if isinstance(inline, dict) else {}
    config = deep_merge(deep_merge(deep_merge(base, operator_config), FORCED_CONFIG),
                        proxy_config(llm_proxy(environ)))
    env["OPENCODE_CONFIG_CONTENT"] = json.dumps(config)
    env["PWD"] = str(checkout)  # OpenCode resolves relative paths against $PWD, not the process cwd
    return env


def llm_proxy(environ: Mapping[str, str]) -> dict[str, str]:
    """The providers the pod's LLM proxy serves (AGENTIC_LLM_PROXY), by OpenCode provider id."""
    raw = environ.get(LLM_PROXY_ENV, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.startswith(("http://127.0.0.1:", "http://[::1]:"))
            for k, v in value.items()):
        raise ConfigError(f"invalid {LLM_PROXY_ENV}: it is not a JSON object of provider ids and proxy URLs on "
                          '127.0.0.1; allowed: e.g. {"anthropic": "http://127.0.0.1:8787/anthropic"} (the chart '
                          "renders it from llmProxy)")
    return value


def proxy_config(proxied: Mapping[str, str]) -> dict[str, Any]:
    """OpenCode pinned to the proxy: each proxied provider's base URL is the proxy's and its key a
    placeholder, and only those providers are enabled."""
    if not proxied:
        return {}
    return {
        "provider": {name: {"options": {"baseURL": url, "apiKey": PROXY_API_KEY}} for name, url in proxied.items()},
        "enabled_providers": sorted(proxied),
    }


def opencode_command(binary: str, checkout: Path, model: str | None, agent: str | None) -> list[str]:
    command = [binary, "run", "--format", "json", "--dir", str(checkout), "--auto"]
    if model:
        command += ["--model", model]
    if agent:
        command += ["--agent", agent]
    return command


class AgentRun:
    """One OpenCode process. `run()` blocks until it ends; `stop()` (any thread, or a signal
    handler) ends it: SIGTERM to its process group, SIGKILL after STOP_WAIT_SECONDS. `observe` sees
    every parsed event as it comes (usage, budgets, the idle watch, the runner's checkpoints)."""

    def __init__(self, command: list[str], env: Mapping[str, str], cwd: Path, out: Output,
                 observe: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._command = command
        self._observe = observe
        self._env = dict(env)
        self._cwd = cwd
        self._out = out
        self._proc: subprocess.Popen[str] | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    def run(self, prompt: str) -> AgentOutcome:
        with self._lock:
            if self._stopped.is_set():
                return AgentOutcome(None, "", None, True, 0)
            try:
                self._proc = subprocess.Popen(
                    self._command, cwd=self._cwd, env=self._env, stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                    errors="replace", bufsize=1, start_new_session=True,
                )
            except OSError as exc:
                why = f"cannot start OpenCode ({self._command[0]}): {exc.strerror or exc}"
                return AgentOutcome(None, "", why, False, 0)
        proc = self._proc
        if self._stopped.is_set():  # stop() came while the process was being started
            self._stopped.clear()
            self.stop()
        stderr_thread = threading.Thread(target=self._pump_stderr, args=(proc,), daemon=True)
        stderr_thread.start()
        threading.Thread(target=self._reap_group, args=(proc,), daemon=True).start()
        try:
            assert proc.stdin is not None
            proc.stdin.write(prompt)
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        summary, error, events = "", None, 0
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.strip():
                continue
            self._out.line(line)
            event = _parse(line)
            if event is None:
                continue
            events += 1
            if self._observe is not None:
                self._observe(event)
            kind = event.get("type")
            part = event.get("part") if isinstance(event.get("part"), dict) else {}
            if kind == "text" and isinstance(part.get("text"), str) and part["text"].strip():
                summary = part["text"].strip()
            elif kind == "error":
                error = _error_message(event.get("error"))
        exit_code = proc.wait()
        stderr_thread.join(timeout=5)
        stopped = self._stopped.is_set()
        if error is None and exit_code != 0 and not stopped:
            error = f"OpenCode exited with code {exit_code}"
        return AgentOutcome(exit_code, summary, error, stopped, events)

    def stop(self) -> None:
        """Idempotent; safe from a signal handler (no locks waited on there)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc, signal.SIGTERM)
        threading.Thread(target=self._kill_later, args=(proc,), daemon=True).start()

    @staticmethod
    def _kill_later(proc: subprocess.Popen[str]) -> None:
        try:
            proc.wait(timeout=STOP_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)

    @staticmethod
    def _reap_group(proc: subprocess.Popen[str]) -> None:
        """When OpenCode has ended, end what it left running in its process group (a server the
        agent started in the background): it would hold the output pipe open and outlive the task."""
        proc.wait()
        time.sleep(LEFTOVER_WAIT_SECONDS)
        _signal_group(proc, signal.SIGKILL)

    def _pump_stderr(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.strip():
                self._out.log("agent", line.rstrip(), level="warning", stream="opencode-stderr")


def _signal_group(proc: subprocess.Popen[str], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _parse(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _error_message(error: Any) -> str:
    if isinstance(error, dict):
        data = error.get("data") if isinstance(error.get("data"), dict) else {}
        message = data.get("message") or error.get("message") or error.get("name")
        name = error.get("name")
        if message and name and name != message:
            return f"OpenCode reported {name}: {message}"
        if message:
            return f"OpenCode reported: {message}"
    return f"OpenCode reported an error: {str(error)[:300]}"
