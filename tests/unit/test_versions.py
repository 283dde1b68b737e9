"""One version: mcp_server.__version__ is the package's (pyproject.toml derives it), the CLI's
`--version`, the MCP serverInfo (tests/e2e/test_package.py, installed from the wheel), the image's
label (tests/e2e/test_image.py), the charts' version and appVersion and the releases' image tag.
Each check names the file to fix; scripts/set-version.sh writes them all."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
import yaml

from mcp_server import __version__
from tests.support.chart import CHART_DIR, CHART_NAME, ENVIRONMENTS, release_dir
from tests.support.testenv import REPO_ROOT

VERSION_SCRIPT = REPO_ROOT / "scripts" / "version.sh"


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_the_version_is_semver_that_python_and_helm_read_alike() -> None:
    from packaging.version import Version

    assert str(Version(__version__)) == __version__
    assert __version__.count(".") == 2 and all(p.isdigit() for p in __version__.split("."))


def test_pyproject_derives_the_package_version_from_mcp_server() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"], "pyproject.toml: the version comes from mcp_server.__version__"
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "mcp_server.__version__"}


def test_the_version_script_prints_it_and_checks_a_release_tag() -> None:
    run = subprocess.run([str(VERSION_SCRIPT)], capture_output=True, text=True, check=True)
    assert run.stdout == f"{__version__}\n"
    ok = subprocess.run([str(VERSION_SCRIPT), "--check-tag", f"v{__version__}"], capture_output=True, text=True)
    assert (ok.returncode, ok.stdout) == (0, f"{__version__}\n")
    for tag in (__version__, f"v{__version__}.1", "v0.0.0-wrong", ""):
        bad = subprocess.run([str(VERSION_SCRIPT), "--check-tag", tag], capture_output=True, text=True)
        assert bad.returncode == 1 and bad.stdout == ""
        assert f"tag '{tag}' does not match the package version {__version__} (expected tag v{__version__})" \
            in bad.stderr


def test_the_cli_reports_it() -> None:
    run = subprocess.run([str(Path(sys.executable).parent / "agentic-runner"), "--version"],
                         capture_output=True, text=True, check=True)
    assert run.stdout == f"agentic-runner {__version__}\n"


def test_the_chart_version_and_app_version_are_it() -> None:
    chart = load_yaml(CHART_DIR / "Chart.yaml")
    assert (chart["version"], chart["appVersion"]) == (__version__, __version__), "chart/Chart.yaml"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_release_is_it_and_vendors_the_chart_of_it(env: str) -> None:
    rel = release_dir(env)
    chart = load_yaml(rel / "Chart.yaml")
    assert (chart["version"], chart["appVersion"]) == (__version__, __version__), f"{rel}/Chart.yaml"
    assert [(d["name"], d["version"]) for d in chart["dependencies"]] == [(CHART_NAME, __version__)]
    lock = load_yaml(rel / "Chart.lock")
    assert [(d["name"], d["version"]) for d in lock["dependencies"]] == [(CHART_NAME, __version__)]
    packages = sorted(p.name for p in (rel / "charts").iterdir())
    assert packages == [f"{CHART_NAME}-{__version__}.tgz"], f"{rel}/charts: run scripts/set-version.sh"
    with tarfile.open(rel / "charts" / packages[0]) as tgz:
        member = tgz.extractfile(f"{CHART_NAME}/Chart.yaml")
        assert member is not None
        vendored = yaml.safe_load(member.read())
    assert (vendored["version"], vendored["appVersion"]) == (__version__, __version__)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_release_runs_the_image_of_it(env: str) -> None:
    image = load_yaml(release_dir(env) / "values.yaml")[CHART_NAME]["image"]
    assert image.get("tag") in (__version__, "", None), f"{release_dir(env)}/values.yaml image.tag"
    assert "repository" not in image, "the releases take the chart's image repository (the published one)"


def test_the_changelog_has_a_section_for_it() -> None:
    changelog = (REPO_ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    released = [line for line in changelog.splitlines() if line.startswith("## [") and "Unreleased" not in line]
    assert released and released[0].startswith(f"## [{__version__}] - "), "CHANGELOG.md: the newest section"
