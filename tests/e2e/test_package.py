"""The package as a user gets it: `python -m build` makes the sdist and the wheel from this checkout's
source files; the wheel carries every file under mcp_server/ and nothing else; installed the way users
install tools (`uv tool install`, `pipx install`) into directories outside the repository, its
`agentic-runner-mcp` answers MCP over stdio and `agentic-runner --version` tells the one version.

Offline: the build backend and the dependencies come from the wheelhouse `make wheelhouse` fills
(pip's own cache makes that quick), never from an index."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import anyio
import pytest

from mcp_server import __version__
from tests.support.mcp_client import connect
from tests.support.testenv import REPO_ROOT

pytestmark = pytest.mark.e2e

PROJECT = "agentic-sdlc-agent-runner"
DIST = "agentic_sdlc_agent_runner"
WHEELHOUSE = REPO_ROOT / ".venv" / "wheelhouse"
SNAPSHOT = REPO_ROOT / "tests" / "support" / "snapshots" / "mcp_tools.json"
BYTECODE = (".pyc", ".pyo")


@dataclass(frozen=True)
class Dists:
    wheel: Path
    sdist: Path


def offline_env(home: Path) -> dict[str, str]:
    """pip, uv and pipx with no index: everything from the wheelhouse. No PYTHONPATH, no repository."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "PIPX_", "VIRTUAL_ENV"))}
    env.pop("PYTHONPATH", None)
    return {**env, "HOME": str(home), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELHOUSE),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "UV_OFFLINE": "1", "UV_NO_INDEX": "1",
            "UV_FIND_LINKS": str(WHEELHOUSE), "UV_PYTHON_DOWNLOADS": "never", "UV_CACHE_DIR": str(home / "uv-cache")}


def source_files() -> list[str]:
    """Every file of the package in this checkout: tracked, or new and not ignored."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "mcp_server"],
                         cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    files = sorted(f for f in out.splitlines() if not f.endswith(BYTECODE) and (REPO_ROOT / f).is_file())
    assert "mcp_server/__init__.py" in files and "mcp_server/prompts/task.md.j2" in files
    return files


def checkout_copy(dest: Path) -> Path:
    """The files a fresh clone would have (plus new ones), without build/, caches or bytecode."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                         capture_output=True, text=True, check=True).stdout
    for name in out.splitlines():
        src = REPO_ROOT / name
        if src.is_file() and not name.endswith(BYTECODE):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name, follow_symlinks=False)
    return dest


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    if not (WHEELHOUSE / ".complete").is_file():
        pytest.fail(f"no wheelhouse at {WHEELHOUSE}: run `make wheelhouse` (make test does)", pytrace=False)
    work = tmp_path_factory.mktemp("build")
    source = checkout_copy(work / "source")
    out = work / "dist"
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)],
                          env=offline_env(work), cwd=work, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"python -m build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    assert (wheel.name, sdist.name) == (f"{DIST}-{__version__}-py3-none-any.whl", f"{DIST}-{__version__}.tar.gz")
    return Dists(wheel, sdist)


def test_the_wheel_carries_every_package_file_and_nothing_else(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as whl:
        names = whl.namelist()
        metadata = Parser().parsestr(whl.read(f"{DIST}-{__version__}.dist-info/METADATA").decode())
        entry_points = whl.read(f"{DIST}-{__version__}.dist-info/entry_points.txt").decode()
    info = f"{DIST}-{__version__}.dist-info/"
    assert sorted(n for n in names if not n.startswith(info)) == source_files()
    assert sorted(n.removeprefix(info) for n in names if n.startswith(info)) == [
        "METADATA", "RECORD", "WHEEL", "entry_points.txt", "licenses/LICENSE", "top_level.txt"]
    assert (metadata["Name"], metadata["Version"], metadata["License-Expression"]) == (
        PROJECT, __version__, "Apache-2.0")
    assert "agentic-runner = mcp_server.cli:main" in entry_points
    assert "agentic-runner-mcp = mcp_server.server:main" in entry_points


def test_the_sdist_carries_the_source_and_nothing_test_only(dists: Dists) -> None:
    root = f"{DIST}-{__version__}/"
    with tarfile.open(dists.sdist) as tgz:
        names = sorted(m.name.removeprefix(root) for m in tgz.getmembers() if m.isfile())
    package = [n for n in names if n.startswith("mcp_server/")]
    assert package == source_files()
    rest = [n for n in names if not n.startswith(("mcp_server/", f"{DIST}.egg-info/"))]
    assert rest == ["LICENSE", "PKG-INFO", "README.md", "pyproject.toml", "setup.cfg"]


@dataclass(frozen=True)
class Installed:
    bin_dir: Path
    python: Path
    home: Path


def install(installer: str, wheel: Path, where: Path) -> Installed:
    home = where / "home"
    home.mkdir(parents=True)
    env = offline_env(home)
    bin_dir = where / "bin"
    if installer == "uv":
        env |= {"UV_TOOL_DIR": str(where / "tools"), "UV_TOOL_BIN_DIR": str(bin_dir)}
        argv = [str(Path(sys.executable).parent / "uv"), "tool", "install", "--python", sys._base_executable,
                str(wheel)]
        venv = where / "tools" / PROJECT
    else:
        env |= {"PIPX_HOME": str(where / "pipx"), "PIPX_BIN_DIR": str(bin_dir), "PIPX_MAN_DIR": str(where / "man")}
        argv = [str(Path(sys.executable).parent / "pipx"), "install", "--python", sys._base_executable, str(wheel)]
        venv = where / "pipx" / "venvs" / PROJECT
    proc = subprocess.run(argv, env=env, cwd=where, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{installer} install failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return Installed(bin_dir, venv / "bin" / "python", home)


@pytest.fixture(scope="module", params=["uv", "pipx"])
def installed(request: pytest.FixtureRequest, dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    where = tmp_path_factory.mktemp(f"{request.param}-user")
    assert REPO_ROOT not in where.parents
    return install(request.param, dists.wheel, where)


def test_the_installed_cli_tells_the_version(installed: Installed) -> None:
    proc = subprocess.run([str(installed.bin_dir / "agentic-runner"), "--version"], cwd=installed.home,
                          env=offline_env(installed.home), capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, f"agentic-runner {__version__}\n"), proc.stderr


def test_the_installed_package_is_the_tools_own_and_finds_its_files(installed: Installed) -> None:
    """The package runs from the tool's environment (not this checkout) and every non-Python file
    of the source tree is there as the code looks it up (importlib.resources)."""
    data = [f.removeprefix("mcp_server/") for f in source_files() if not f.endswith(".py")]
    probe = ("import json, sys, importlib.resources as r, mcp_server; "
             "print(json.dumps([mcp_server.__file__, [(r.files('mcp_server') / p).read_bytes().hex() "
             "for p in sys.argv[1:]]]))")
    proc = subprocess.run([str(installed.python), "-c", probe, *data], cwd=installed.home,
                          env=offline_env(installed.home), capture_output=True, text=True, timeout=60, check=True)
    location, contents = json.loads(proc.stdout)
    assert Path(location).is_relative_to(installed.python.parents[1]), location
    assert contents == [(REPO_ROOT / "mcp_server" / p).read_bytes().hex() for p in data]


def test_the_installed_mcp_server_answers_over_stdio(installed: Installed) -> None:
    async def session() -> tuple[str, str, list[dict[str, object]]]:
        env = {"HOME": str(installed.home), "PATH": "/usr/bin:/bin"}
        async with connect(env, cwd=installed.home, command=str(installed.bin_dir / "agentic-runner-mcp")) as mcp:
            info = mcp.initialized.server_info
            return info.name, info.version, await mcp.tools()

    name, version, tools = anyio.run(session)
    assert (name, version) == ("agentic-runner", __version__)
    assert tools == json.loads(SNAPSHOT.read_text(encoding="utf-8"))
