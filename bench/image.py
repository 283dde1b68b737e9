"""The agent image's size (issue 12's `image_mb`, goal <= 400 MB): bytes as `podman image inspect`
reports them (uncompressed, all layers), and each layer's share from `podman history`."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass

from tests.support.testenv import REPO_ROOT

GOAL_MB = 400.0
CONTAINERS_CONF = REPO_ROOT / "container" / "containers.conf"


@dataclass(frozen=True)
class ImageSize:
    image: str
    size_bytes: int
    layers: list[tuple[int, str]]  # (bytes, created by), newest first

    @property
    def mb(self) -> float:
        return self.size_bytes / 1e6


def _podman(*args: str) -> str:
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    return subprocess.run(["podman", *args], env=env, capture_output=True, text=True, check=True).stdout


def measure(image: str) -> ImageSize:
    """Build the image of this checkout (scripts/build-image.sh; warm builds reuse every layer), then
    read its size."""
    build = subprocess.run([str(REPO_ROOT / "scripts" / "build-image.sh"), image], capture_output=True, text=True)
    if build.returncode != 0:
        raise SystemExit(f"scripts/build-image.sh failed:\n{build.stderr[-3000:]}")
    size = int(_podman("image", "inspect", "--format", "{{.Size}}", image))
    history = json.loads(_podman("history", "--no-trunc", "--format", "json", image))
    layers = [(int(row["size"]), str(row.get("CreatedBy") or row.get("createdBy") or "")) for row in history
              if int(row.get("size") or 0) > 0]
    return ImageSize(image, size, layers)


def report(size: ImageSize) -> None:
    verdict = "meets" if size.mb <= GOAL_MB else "MISSES"
    print(f"agent image {size.image}: {size.mb:.1f} MB ({size.size_bytes / 2**20:.1f} MiB), "
          f"goal <= {GOAL_MB:.0f} MB: {verdict}")
    for raw, created_by in size.layers:
        print(f"  {raw / 1e6:7.1f} MB  {created_by[:100]}")
