"""Environments (dev, stg, prod, ...) -> backend, kube context, namespace, release; defaults and overrides.

Precedence, lowest first:

1. built-in: environments dev, stg and prod with namespace `agent-runner-<env>`, release
   `agentic-sdlc-agent-runner-<env>` (as in `releases/`), the current kube context, default env `dev`;
2. the repository's `.agentic-sdlc/config.yaml` (or the file named by `AGENTIC_CONFIG`):

   ```yaml
   environment: dev            # the default environment
   backend: kubernetes         # kubernetes | local, for every environment
   kube_context: my-cluster    # for every environment
   environments:
     stg: {kube_context: stg-cluster}
     qa: {namespace: agent-runner-qa, release: agentic-sdlc-agent-runner-qa}   # an extra one
   ```
3. environment variables: `AGENTIC_ENV` (default environment), `AGENTIC_BACKEND`, `AGENTIC_KUBECONFIG`;
   `AGENTIC_NAMESPACE`, `AGENTIC_RELEASE`, `AGENTIC_KUBECONTEXT` for the default environment;
   `AGENTIC_<ENV>_NAMESPACE`, `AGENTIC_<ENV>_RELEASE`, `AGENTIC_<ENV>_KUBECONTEXT` for one environment.

Without a configured backend, `kubernetes` is used when a cluster is configured (a kube context, a
kubeconfig, or running in a pod), else `local`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mcp_server import naming
from mcp_server.errors import ConfigError, InvalidInput
from mcp_server.models import BackendName

BUILTIN_ENVIRONMENTS = ("dev", "stg", "prod")
CONFIG_FILE = Path(".agentic-sdlc") / "config.yaml"
RELEASE_PREFIX = "agentic-sdlc-agent-runner"
NAMESPACE_PREFIX = "agent-runner"


class EnvironmentSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    namespace: str
    release: str
    backend: BackendName
    kube_context: str | None = None
    kubeconfig: str | None = None

    @property
    def pod_template(self) -> str:
        return f"{self.release}-agent"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    default_environment: str
    environments: dict[str, EnvironmentSettings]
    repo_root: Path
    config_file: Path | None = None
    log_poll_seconds: float = 0.5
    log_linger_seconds: float = 0.2
    context_file_max_bytes: int = 64 * 1024
    context_total_max_bytes: int = 160 * 1024

    @property
    def known(self) -> str:
        return ", ".join(sorted(self.environments))

    def environment(self, name: str | None = None, field: str = "environment") -> EnvironmentSettings:
        """The settings of `name` (default: the default environment); an unknown name lists the known."""
        name = name or self.default_environment
        try:
            return self.environments[name]
        except KeyError:
            raise InvalidInput(
                field, f"unknown environment {name!r}", f"one of the configured environments: {self.known}"
            ) from None


class _ClusterKeys(BaseModel):
    """The keys the config file takes both at the top (every environment) and per environment."""

    model_config = ConfigDict(extra="forbid")

    backend: BackendName | None = None
    kube_context: str | None = None
    kubeconfig: str | None = None


class _EnvironmentFile(_ClusterKeys):
    namespace: str | None = None
    release: str | None = None


class _ConfigFile(_ClusterKeys):
    environment: str | None = None
    environments: dict[str, _EnvironmentFile] = Field(default_factory=dict)


def find_repo_root(cwd: Path) -> Path:
    """The git top-level directory containing `cwd`, or `cwd` outside a git repository."""
    proc = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True, text=True)
    if proc.returncode == 0 and proc.stdout.strip():
        return Path(proc.stdout.strip()).resolve()
    return cwd.resolve()


def _read_config_file(path: Path) -> _ConfigFile:
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the configuration file {path}: {exc}. Fix or remove it.") from None
    try:
        return _ConfigFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(
            f"invalid configuration file {path}: {problems}. Known keys: environment, backend, "
            "kube_context, kubeconfig, environments.<name>.{namespace, release, backend, kube_context, "
            "kubeconfig}."
        ) from None


def _cluster_configured(environ: Mapping[str, str], kube_context: str | None, kubeconfig: str | None) -> bool:
    if kube_context or kubeconfig or environ.get("KUBECONFIG") or environ.get("KUBERNETES_SERVICE_HOST"):
        return True
    home = environ.get("HOME")
    return bool(home) and (Path(home) / ".kube" / "config").is_file()


def _env_key(name: str) -> str:
    return name.upper().replace("-", "_")


def load_settings(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None, environment: str | None = None
) -> Settings:
    """Settings from the built-in defaults, the repo's config file and the environment variables.

    `environment` (e.g. the CLI's --env) overrides the default environment."""
    environ = os.environ if environ is None else environ
    repo_root = (
        Path(environ["AGENTIC_REPO_ROOT"]).resolve()
        if environ.get("AGENTIC_REPO_ROOT")
        else find_repo_root(cwd or Path.cwd())
    )
    explicit = environ.get("AGENTIC_CONFIG")
    config_path = Path(explicit) if explicit else repo_root / CONFIG_FILE
    if explicit and not config_path.is_file():
        raise ConfigError(
            f"AGENTIC_CONFIG names {config_path}, which is not a file. Fix the path or unset it."
        )
    file = _read_config_file(config_path) if config_path.is_file() else _ConfigFile()

    names = list(BUILTIN_ENVIRONMENTS) + [n for n in file.environments if n not in BUILTIN_ENVIRONMENTS]
    for name in names:
        try:
            naming.validate_environment_name(name, "environments")
        except InvalidInput as exc:
            raise ConfigError(
                f"invalid configuration file {config_path}: environment name {name!r}: {exc.allowed}."
            ) from None
    default = environment or environ.get("AGENTIC_ENV") or file.environment or "dev"

    global_backend = environ.get("AGENTIC_BACKEND") or file.backend
    if global_backend not in (None, "kubernetes", "local"):
        raise ConfigError(f"AGENTIC_BACKEND={global_backend!r} is not a backend; use kubernetes or local.")
    global_kubeconfig = environ.get("AGENTIC_KUBECONFIG") or file.kubeconfig

    environments: dict[str, EnvironmentSettings] = {}
    for name in names:
        entry = file.environments.get(name, _EnvironmentFile())
        key = _env_key(name)

        def pick(
            attr: str,
            var: str,
            fallback: str | None,
            *,
            entry: _EnvironmentFile = entry,
            key: str = key,
            name: str = name,
        ) -> str | None:
            value = environ.get(f"AGENTIC_{key}_{var}")
            if value is None and name == default:
                value = environ.get(f"AGENTIC_{var}")
            return value or getattr(entry, attr) or fallback

        kube_context = pick("kube_context", "KUBECONTEXT", file.kube_context)
        kubeconfig = entry.kubeconfig or global_kubeconfig
        backend = (
            entry.backend
            or global_backend
            or ("kubernetes" if _cluster_configured(environ, kube_context, kubeconfig) else "local")
        )
        environments[name] = EnvironmentSettings(
            name=name,
            namespace=pick("namespace", "NAMESPACE", f"{NAMESPACE_PREFIX}-{name}") or "",
            release=pick("release", "RELEASE", f"{RELEASE_PREFIX}-{name}") or "",
            backend=backend,
            kube_context=kube_context,
            kubeconfig=kubeconfig,
        )

    settings = Settings(
        default_environment=default,
        environments=environments,
        repo_root=repo_root,
        config_file=config_path if config_path.is_file() else None,
    )
    if default not in environments:
        source = "--env" if environment else "AGENTIC_ENV" if environ.get("AGENTIC_ENV") else "environment"
        raise InvalidInput(
            source,
            f"unknown environment {default!r}",
            f"one of the configured environments: {settings.known}",
        )
    return settings
