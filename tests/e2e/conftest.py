"""Shared pytest fixtures for the end-to-end tests. Keep this file small: helpers live in
tests/e2e/helpers/<topic>.py, and each fixture block below says who owns it."""

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers.registry import REGISTRY_BIN, ImageBuilder, Registry  # noqa: E402


# -- images (image-local): a real registry and an OCI image builder -------------------------
@pytest.fixture
def registry(tmp_path):
    """docker-registry on 127.0.0.1 with TLS (reg.ca_file) and htpasswd (reg.user/password);
    stopped and removed after the test."""
    if not os.path.exists(REGISTRY_BIN):
        pytest.skip("docker-registry is not installed (scripts/deps.sh installs it)")
    with Registry(tmp_path / "registry") as reg:
        yield reg


@pytest.fixture
def image_builder(tmp_path):
    """ImageBuilder making OCI layouts under tmp_path with umoci (busybox() / empty())."""
    if not shutil.which("umoci") or not os.path.exists("/bin/busybox"):
        pytest.skip("umoci and busybox-static are needed to build test images")
    return ImageBuilder(tmp_path / "images")
