"""Images for the real node's tests: a small busybox image made here (no registry is reachable),
imported into the node's containerd the same way as the agent image (podman, then
`scripts/testenv.sh import-image`)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

from tests.support.testenv import REPO_ROOT, TestEnv

BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static (scripts/install-deps.sh)
BUSYBOX_IMAGE = "localhost/agentic-testenv/busybox:1"
APPLETS = ("sh", "echo", "sleep", "cat", "touch", "mkdir", "id", "ls", "head", "dd", "true")
CONTAINERS_CONF = REPO_ROOT / "container" / "containers.conf"


def busybox_rootfs() -> bytes:
    """A root filesystem with /bin/busybox, its applets as links and an empty /tmp."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("bin", "tmp"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        tar.add(str(BUSYBOX), arcname="bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    return buffer.getvalue()


def busybox_image(testenv: TestEnv) -> str:
    """The busybox image, built with podman if needed and imported into the real node."""
    if not BUSYBOX.exists():
        raise AssertionError(f"{BUSYBOX} is missing: run scripts/install-deps.sh (busybox-static)")
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    exists = subprocess.run(["podman", "image", "exists", BUSYBOX_IMAGE], env=env).returncode == 0
    if not exists:
        subprocess.run(["podman", "import", "--quiet", "-", BUSYBOX_IMAGE], input=busybox_rootfs(), env=env,
                       check=True, capture_output=True)
    testenv.import_image(BUSYBOX_IMAGE)
    return BUSYBOX_IMAGE
