"""The charts as released: scripts/package-charts.sh (what the release pipeline runs) packages chart/
and each release with the pinned helm, and `helm template` of every package renders the published
image of the same version: ghcr.io/<org>/agentic-sdlc-agent-runner:<version>, the org overridable."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from mcp_server import __version__
from tests.support.chart import (
    CHART_DIR,
    CHART_NAME,
    ENVIRONMENTS,
    Doc,
    Helm,
    find,
    release_name,
    release_namespace,
)
from tests.support.release import PACKAGE_SCRIPT, package_charts
from tests.support.testenv import REPO_ROOT, TestEnv

pytestmark = pytest.mark.integration

PUBLISHED = "ghcr.io/agentic-sdlc/agentic-sdlc-agent-runner"


@pytest.fixture(scope="module")
def helm(testenv: TestEnv) -> Helm:
    return Helm.for_testenv(testenv)


def expected_packages() -> list[str]:
    return sorted([f"{CHART_NAME}-{__version__}.tgz"] + [f"{release_name(e)}-{__version__}.tgz" for e in ENVIRONMENTS])


def packaged_into(helm: Helm, out: Path, *args: str) -> dict[str, Path]:
    proc = package_charts(helm, str(out), *args)
    assert proc.returncode == 0, proc.stderr
    printed = [Path(line) for line in proc.stdout.splitlines()]
    assert sorted(p.name for p in printed) == expected_packages() == sorted(p.name for p in out.iterdir())
    return {p.name.removesuffix(f"-{__version__}.tgz"): p for p in printed}


@pytest.fixture(scope="module")
def packages(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return packaged_into(helm, tmp_path_factory.mktemp("charts"))


def agent_image(docs: list[Doc]) -> str:
    (container,) = find(docs, "PodTemplate")["template"]["spec"]["containers"]
    return str(container["image"])


def render_package(helm: Helm, package: Path, env: str | None) -> list[Doc]:
    if env is None:
        return helm.render(package, release="t", namespace="ns")
    return helm.render(package, release=release_name(env), namespace=release_namespace(env))


def test_the_chart_package_renders_the_published_image_of_its_version(helm: Helm, packages: dict[str, Path]) -> None:
    assert agent_image(render_package(helm, packages[CHART_NAME], None)) == f"{PUBLISHED}:{__version__}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_release_package_renders_the_published_image_of_its_version(
        helm: Helm, packages: dict[str, Path], env: str) -> None:
    docs = render_package(helm, packages[release_name(env)], env)
    assert agent_image(docs) == f"{PUBLISHED}:{__version__}"
    assert docs == helm.render_release(env), "the package renders what releases/ renders"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_release_package_carries_the_chart_and_not_the_argocd_application(
        packages: dict[str, Path], env: str) -> None:
    with tarfile.open(packages[release_name(env)]) as tgz:
        names = set(tgz.getnames())
        member = tgz.extractfile(f"{release_name(env)}/charts/{CHART_NAME}/Chart.yaml")
        assert member is not None
        vendored = yaml.safe_load(member.read())
    assert (vendored["name"], vendored["version"], vendored["appVersion"]) == (CHART_NAME, __version__, __version__)
    assert f"{release_name(env)}/Chart.lock" in names
    assert not [n for n in names if n.endswith("argocd.yaml")]


def test_the_image_repository_option_points_every_package_at_that_registry(helm: Helm, tmp_path: Path) -> None:
    values_before = (CHART_DIR / "values.yaml").read_bytes()
    repository = "registry.example.com:5000/platform/agentic-sdlc-agent-runner"
    packages = packaged_into(helm, tmp_path / "charts", "--image-repository", repository)
    assert agent_image(render_package(helm, packages[CHART_NAME], None)) == f"{repository}:{__version__}"
    for env in ENVIRONMENTS:
        assert agent_image(render_package(helm, packages[release_name(env)], env)) == f"{repository}:{__version__}"
    assert (CHART_DIR / "values.yaml").read_bytes() == values_before, "chart/ itself is left as it is"


@pytest.mark.parametrize("repository", [
    "ghcr.io/My-Org/agentic-sdlc-agent-runner",      # uppercase: registries refuse it
    "ghcr.io/org/agentic-sdlc-agent-runner:0.1.0",   # a tag: the chart adds the version
    "ghcr.io/org/agentic-sdlc-agent-runner@sha256:" + "a" * 64,
    "agentic-sdlc-agent-runner",                      # no registry
    "ghcr.io/org/agent runner",
])
def test_a_bad_image_repository_is_refused_and_nothing_is_packaged(
        helm: Helm, tmp_path: Path, repository: str) -> None:
    out = tmp_path / "charts"
    proc = package_charts(helm, str(out), "--image-repository", repository)
    assert proc.returncode == 2 and proc.stdout == ""
    assert (f"package-charts: --image-repository '{repository}' is not an image repository without tag or "
            f"digest, in lowercase (e.g. ghcr.io/my-org/agentic-sdlc-agent-runner)") in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    ([], "usage: scripts/package-charts.sh OUT_DIR [--image-repository REPOSITORY]"),
    (["a", "b"], "one OUT_DIR only, got 'a' and 'b'"),
    (["out", "--image-repository"], "--image-repository needs a value"),
    (["out", "--push"], "unknown option '--push'"),
])
def test_bad_usage_is_refused(helm: Helm, tmp_path: Path, args: list[str], message: str) -> None:
    proc = subprocess.run([str(PACKAGE_SCRIPT), *args], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and message in proc.stderr
    assert list(tmp_path.iterdir()) == []


# -- scripts/set-version.sh ---------------------------------------------------------------------

SET_VERSION_FILES = ("mcp_server/__init__.py", "chart", "releases", "README.md", "scripts/set-version.sh")


def copy_for_set_version(dest: Path) -> Path:
    for name in SET_VERSION_FILES:
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def set_version(helm: Helm, root: Path, version: str) -> subprocess.CompletedProcess[str]:
    env = {**helm.testenv.environ(), "HELM": str(helm.testenv.bin_dir / "helm")}
    return subprocess.run([str(root / "scripts" / "set-version.sh"), version], env=env, cwd=root,
                          capture_output=True, text=True, timeout=300)


def test_set_version_writes_the_version_everywhere_and_refreshes_the_vendored_chart(
        helm: Helm, tmp_path: Path) -> None:
    root = copy_for_set_version(tmp_path / "repo")
    proc = set_version(helm, root, "9.8.7")
    assert proc.returncode == 0, proc.stderr
    assert '__version__ = "9.8.7"' in (root / "mcp_server" / "__init__.py").read_text()
    chart = yaml.safe_load((root / "chart" / "Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == ("9.8.7", "9.8.7")
    for env in ENVIRONMENTS:
        rel = root / "releases" / release_name(env)
        meta = yaml.safe_load((rel / "Chart.yaml").read_text())
        assert (meta["version"], meta["appVersion"], meta["dependencies"][0]["version"]) == ("9.8.7",) * 3
        assert yaml.safe_load((rel / "values.yaml").read_text())[CHART_NAME]["image"]["tag"] == "9.8.7"
        assert sorted(p.name for p in (rel / "charts").iterdir()) == [f"{CHART_NAME}-9.8.7.tgz"]
        assert yaml.safe_load((rel / "Chart.lock").read_text())["dependencies"][0]["version"] == "9.8.7"
        assert helm.run("template", "t", str(rel), "--kube-version", helm.kube_version).returncode == 0
    docs = (root / "releases" / "README.md").read_text()
    assert "--version 9.8.7 -n agent-runner-prod" in docs and __version__ not in docs
    readme = (root / "README.md").read_text()
    for written in ("runner@v9.8.7\n", "agentic_sdlc_agent_runner-9.8.7-py3-none-any.whl", "--version 9.8.7 -n",
                    "agentic-sdlc-agent-runner:9.8.7`", "# agentic-runner 9.8.7\n"):
        assert written in readme
    assert __version__ not in readme


@pytest.mark.parametrize("version", ["1.2", "v1.2.3", "1.2.3.4", "01.2.3", "1.2.3-beta", "1.2.3-rc1", ""])
def test_set_version_refuses_a_bad_version_and_changes_nothing(helm: Helm, tmp_path: Path, version: str) -> None:
    root = copy_for_set_version(tmp_path / "repo")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    proc = set_version(helm, root, version)
    assert proc.returncode == 1
    assert proc.stderr == (f"set-version: version '{version}' is not X.Y.Z (digits, no leading zeros, no "
                           "pre-release; usage: scripts/set-version.sh X.Y.Z)\n")
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
