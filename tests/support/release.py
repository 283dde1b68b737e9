"""Helpers for the release tests: the chart packager as the pipeline runs it, the runner's pinned
requirements, and a throwaway OCI registry on 127.0.0.1 (the pinned CNCF distribution registry)."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from packaging.utils import canonicalize_name

from tests.support.chart import Helm
from tests.support.testenv import REPO_ROOT

PACKAGE_SCRIPT = REPO_ROOT / "scripts" / "package-charts.sh"
REQUIREMENTS_TXT = REPO_ROOT / "container" / "requirements-runner.txt"
REGISTRY_BIN = REPO_ROOT / ".venv" / "bin" / "registry"


def package_charts(helm: Helm, *args: str) -> subprocess.CompletedProcess[str]:
    """scripts/package-charts.sh with the pinned helm."""
    env = {**helm.testenv.environ(), "HELM": str(helm.testenv.bin_dir / "helm")}
    return subprocess.run([str(PACKAGE_SCRIPT), *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300)


def pinned_runner_requirements() -> dict[str, str]:
    """name -> version of every pin in container/requirements-runner.txt (names canonicalized)."""
    text = REQUIREMENTS_TXT.read_text(encoding="utf-8")
    return {canonicalize_name(m[0]): m[1] for m in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", text, re.MULTILINE)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def oci_registry(root: Path) -> Iterator[str]:
    """A plain-HTTP OCI registry on 127.0.0.1 storing under `root`; yields its host:port."""
    if not REGISTRY_BIN.exists():
        raise AssertionError(f"no {REGISTRY_BIN}: run `make registry` (make test does)")
    port = _free_port()
    config = root / "config.yml"
    root.mkdir(parents=True, exist_ok=True)
    config.write_text(f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root / "data"}
http:
  addr: 127.0.0.1:{port}
""")
    log = (root / "registry.log").open("w")
    proc = subprocess.Popen([str(REGISTRY_BIN), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the registry did not start:\n{(root / 'registry.log').read_text()}") from exc
                time.sleep(0.1)
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
