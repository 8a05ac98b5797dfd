"""The image the manifests use (deploy/image/Dockerfile) builds from this repository's wheel, where a build
tool (docker, podman or buildah) can run here; otherwise the test is skipped and says which tool is missing or
why it cannot build (no daemon). The build needs the base image from a registry."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

DOCKERFILE = REPO_ROOT / "deploy" / "image" / "Dockerfile"


def _builder() -> list[str]:
    for tool, check in (("podman", ["info"]), ("buildah", ["version"]), ("docker", ["info"])):
        path = shutil.which(tool)
        if path is None:
            continue
        usable = subprocess.run([path, *check], capture_output=True, text=True, timeout=60, check=False)
        if usable.returncode == 0:
            return [path, "bud"] if tool == "buildah" else [path, "build"]
        pytest.skip(f"{tool} is installed but cannot build here: {usable.stderr.strip()[:200]}")
    pytest.skip("no image build tool here (docker, podman or buildah)")


def test_the_image_builds_from_the_wheel(tmp_path: Path) -> None:
    build = _builder()
    dist = REPO_ROOT / "dist"
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(REPO_ROOT)],
                           capture_output=True, text=True, timeout=600, check=False)
    assert wheel.returncode == 0, wheel.stderr
    result = subprocess.run([*build, "-f", str(DOCKERFILE), "-t", "drainctl:0.1.0-test", str(REPO_ROOT)],
                            capture_output=True, text=True, timeout=1200, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
