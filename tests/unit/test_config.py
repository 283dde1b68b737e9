"""config.py: environments, the config file, environment variables, backend choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_server.config import load_settings
from mcp_server.errors import ConfigError, InvalidInput


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / ".agentic-sdlc").mkdir()
    return tmp_path


def env(repo: Path, **extra: str) -> dict[str, str]:
    return {"AGENTIC_REPO_ROOT": str(repo), "HOME": str(repo / "home"), **extra}


def test_builtin_environments_match_the_releases(repo: Path) -> None:
    settings = load_settings(env(repo))
    assert settings.default_environment == "dev"
    assert sorted(settings.environments) == ["dev", "prod", "stg"]
    for name in ("dev", "stg", "prod"):
        e = settings.environment(name)
        assert (e.namespace, e.release, e.kube_context) == (
            f"agent-runner-{name}",
            f"agentic-sdlc-agent-runner-{name}",
            None,
        )
        assert e.pod_template == f"agentic-sdlc-agent-runner-{name}-agent"


def test_without_a_cluster_the_local_backend_is_the_default(repo: Path) -> None:
    assert load_settings(env(repo)).environment().backend == "local"
    assert load_settings(env(repo, KUBECONFIG="/some/kubeconfig")).environment().backend == "kubernetes"
    (repo / "home" / ".kube").mkdir(parents=True)
    (repo / "home" / ".kube" / "config").write_text("{}")
    assert load_settings(env(repo)).environment().backend == "kubernetes"
    assert load_settings(env(repo, AGENTIC_BACKEND="local")).environment().backend == "local"


def test_config_file_overrides_and_adds_environments(repo: Path) -> None:
    (repo / ".agentic-sdlc" / "config.yaml").write_text(
        "environment: stg\nbackend: kubernetes\nkube_context: shared\n"
        "environments:\n  stg: {kube_context: stg-cluster}\n"
        "  qa: {namespace: agents-qa, release: runner-qa}\n"
    )
    settings = load_settings(env(repo))
    assert settings.default_environment == "stg"
    assert settings.environment().kube_context == "stg-cluster"
    assert settings.environment("dev").kube_context == "shared"
    qa = settings.environment("qa")
    assert (qa.namespace, qa.release, qa.backend) == ("agents-qa", "runner-qa", "kubernetes")


def test_environment_variables_override_the_default_environment_only(repo: Path) -> None:
    settings = load_settings(
        env(
            repo,
            AGENTIC_ENV="stg",
            AGENTIC_NAMESPACE="test-ns",
            AGENTIC_RELEASE="rel",
            AGENTIC_KUBECONTEXT="ctx",
            AGENTIC_PROD_NAMESPACE="p-ns",
        )
    )
    stg = settings.environment()
    assert (stg.name, stg.namespace, stg.release, stg.kube_context) == ("stg", "test-ns", "rel", "ctx")
    assert settings.environment("dev").namespace == "agent-runner-dev"
    assert settings.environment("prod").namespace == "p-ns"


def test_cli_environment_wins(repo: Path) -> None:
    assert load_settings(env(repo, AGENTIC_ENV="stg"), environment="prod").default_environment == "prod"


def test_unknown_environment_lists_the_known_ones(repo: Path) -> None:
    settings = load_settings(env(repo))
    with pytest.raises(InvalidInput) as refused:
        settings.environment("qa")
    assert str(refused.value) == (
        "invalid environment: unknown environment 'qa'; allowed: one of the configured environments: "
        "dev, prod, stg."
    )
    with pytest.raises(InvalidInput, match="invalid AGENTIC_ENV: unknown environment 'nope'"):
        load_settings(env(repo, AGENTIC_ENV="nope"))
    with pytest.raises(InvalidInput, match="invalid --env: unknown environment 'nope'"):
        load_settings(env(repo), environment="nope")


def test_bad_config_files_say_what_is_wrong(repo: Path) -> None:
    path = repo / ".agentic-sdlc" / "config.yaml"
    path.write_text("environments:\n  dev: {namespaces: x}\n")
    with pytest.raises(ConfigError, match=r"environments\.dev\.namespaces: Extra inputs are not permitted"):
        load_settings(env(repo))
    path.write_text("backend: docker\n")
    with pytest.raises(ConfigError, match="backend"):
        load_settings(env(repo))
    path.write_text("environments:\n  Bad_Name: {}\n")
    with pytest.raises(ConfigError, match="environment name 'Bad_Name'"):
        load_settings(env(repo))
    path.write_text(": : :")
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        load_settings(env(repo))
    with pytest.raises(ConfigError, match="AGENTIC_CONFIG names"):
        load_settings(env(repo, AGENTIC_CONFIG=str(repo / "missing.yaml")))
