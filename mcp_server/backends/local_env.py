"""What the agent of a local task gets from the developer's environment: an allowlist.

The supervisor keeps the developer's whole environment for its pusher (their ssh agent, their git
credential helpers); the runner and OpenCode get only what a coding agent needs: the locale, PATH,
HOME and the XDG directories (OpenCode's login and config), proxies and CA bundles, the runner's and
OpenCode's own switches, and the LLM provider keys OpenCode uses (the well-known ones, plus the names in
`AGENTIC_LLM_ENV`). Never `SSH_AUTH_SOCK`, `KUBECONFIG`, cloud credentials, `GIT_*`, or any other
`*_TOKEN`/`*_KEY`/`*SECRET*`/`*PASSWORD*` variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

ALLOWED_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "TZ", "TMPDIR", "COLORTERM",
    "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE",
    "PYTHONPATH", "VIRTUAL_ENV",
})
ALLOWED_PREFIXES = ("LC_", "OPENCODE_", "AGENTIC_", "npm_config_")
# The provider keys OpenCode reads from the environment (its built-in providers).
LLM_KEYS = frozenset({
    "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENERATIVE_AI_API_KEY",
    "OPENROUTER_API_KEY", "GROQ_API_KEY", "MISTRAL_API_KEY", "XAI_API_KEY", "DEEPSEEK_API_KEY",
    "TOGETHER_AI_API_KEY", "FIREWORKS_API_KEY", "CEREBRAS_API_KEY", "OPENCODE_API_KEY",
})
# Runner settings that hold or point at git credentials: the supervisor's pusher uses them, not the agent.
DENIED_NAMES = frozenset({
    "AGENTIC_GIT_TOKEN", "AGENTIC_GIT_USERNAME", "AGENTIC_GIT_SSH_DIR", "AGENTIC_GIT_AUTH_DIR",
    "AGENTIC_GIT_KNOWN_HOSTS", "AGENTIC_KUBECONFIG", "AGENTIC_GIT_AUTH",
})
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|(^|_)KEY($|_)|API_?KEY|PRIVATE", re.I)


def llm_names(environ: Mapping[str, str]) -> frozenset[str]:
    listed = {n.strip() for n in environ.get("AGENTIC_LLM_ENV", "").split(",") if n.strip()}
    return LLM_KEYS | listed


def agent_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The allowlisted part of `environ` for the runner and its agent."""
    llm = llm_names(environ)
    kept: dict[str, str] = {}
    for name, value in environ.items():
        if name in llm:
            kept[name] = value
            continue
        if name in DENIED_NAMES or _SECRET_NAME.search(name):
            continue
        if name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES):
            kept[name] = value
    return kept
