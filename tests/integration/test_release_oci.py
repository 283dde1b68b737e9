"""The charts as OCI artifacts: the packages scripts/package-charts.sh makes are pushed with `helm push`
to a real OCI registry (the pinned CNCF distribution registry, on 127.0.0.1), and the install command
releases/README.md documents, `helm upgrade --install <release> oci://.../<release> --version <v>`,
installs the dev release from there into the test control plane, with the published image."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_server import __version__
from tests.support.chart import CHART_NAME, ENVIRONMENTS, Helm, release_name, release_namespace
from tests.support.release import oci_registry, package_charts
from tests.support.testenv import REPO_ROOT, TestEnv

pytestmark = pytest.mark.integration

DOCUMENTED_REGISTRY = "oci://ghcr.io/agentic-sdlc/charts"
PUBLISHED_IMAGE = "ghcr.io/agentic-sdlc/agentic-sdlc-agent-runner"


@pytest.fixture(scope="module")
def helm(testenv: TestEnv) -> Helm:
    return Helm.for_testenv(testenv)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with oci_registry(tmp_path_factory.mktemp("oci-registry")) as address:
        yield address


@pytest.fixture(scope="module")
def pushed(helm: Helm, registry: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Every package pushed as the release pipeline pushes it; the registry's chart URL."""
    out = tmp_path_factory.mktemp("charts")
    proc = package_charts(helm, str(out))
    assert proc.returncode == 0, proc.stderr
    target = f"oci://{registry}/charts"
    for package in sorted(Path(line) for line in proc.stdout.splitlines()):
        push = helm.run("push", str(package), target, "--plain-http")
        assert f"Pushed: {registry}/charts/{package.name.removesuffix(f'-{__version__}.tgz')}:{__version__}" \
            in push.stdout + push.stderr
    return target


def documented_oci_commands() -> dict[str, str]:
    readme = (REPO_ROOT / "releases" / "README.md").read_text(encoding="utf-8")
    lines = [ln for ln in readme.splitlines() if ln.startswith("helm upgrade --install ") and "oci://" in ln]
    return {env: line for env in ENVIRONMENTS for line in lines if line.split()[3] == release_name(env)}


def test_the_documented_oci_commands_install_each_release_at_the_version() -> None:
    commands = documented_oci_commands()
    assert sorted(commands) == sorted(ENVIRONMENTS)
    for env, command in commands.items():
        assert command == (f"helm upgrade --install {release_name(env)} {DOCUMENTED_REGISTRY}/{release_name(env)} "
                           f"--version {__version__} -n {release_namespace(env)} --create-namespace")


@pytest.mark.parametrize("name", [CHART_NAME, *(release_name(e) for e in ENVIRONMENTS)])
def test_each_pushed_chart_comes_back_with_its_version_and_the_published_image(
        helm: Helm, pushed: str, name: str) -> None:
    chart = helm.run("show", "chart", f"{pushed}/{name}", "--version", __version__, "--plain-http").stdout
    assert f"name: {name}\n" in chart and f"version: {__version__}\n" in chart
    assert f"appVersion: {__version__}\n" in chart
    values = helm.run("show", "values", f"{pushed}/{name}", "--version", __version__, "--plain-http").stdout
    if name == CHART_NAME:
        assert f"  repository: {PUBLISHED_IMAGE}\n" in values


def test_the_documented_command_installs_the_dev_release_from_the_registry(
        helm: Helm, testenv: TestEnv, pushed: str, namespace: str) -> None:
    """As documented, with the registry's address for ghcr.io's, plain HTTP (127.0.0.1) and the test's
    own namespace for agent-runner-dev (the chart's namespace value follows it)."""
    documented = documented_oci_commands()["dev"]
    command = documented.replace(DOCUMENTED_REGISTRY, pushed)
    command = re.sub(r" -n agent-runner-dev ", f" -n {namespace} ", command)
    command += f" --plain-http --set {CHART_NAME}.namespace.name={namespace}"
    assert shlex.split(command)[:4] == ["helm", "upgrade", "--install", release_name("dev")]
    install = helm.run_shell_command(command)
    assert "STATUS: deployed" in install.stdout and "REVISION: 1" in install.stdout
    image = testenv.kubectl("get", "podtemplate", f"{release_name('dev')}-agent", "-n", namespace,
                            "-o", "jsonpath={.template.spec.containers[0].image}").stdout
    assert image == f"{PUBLISHED_IMAGE}:{__version__}"
    listed = helm.run("list", "-n", namespace, "-o", "json").stdout
    assert f'"chart":"{release_name("dev")}-{__version__}"' in listed and f'"app_version":"{__version__}"' in listed
    helm.run("uninstall", release_name("dev"), "-n", namespace, "--wait")
