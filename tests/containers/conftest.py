"""Container tests: the real Docker engine (scripts/docker start) and the images that
`make images` builds, driven through the `docker` Python SDK. Everything a test starts it stops
and removes by its own id; published ports are on 127.0.0.1 only."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from tests.containers.images import build_images


@pytest.fixture(scope="session")
def images(pytestconfig: pytest.Config) -> dict[str, str]:
    """IOT_EDGE_IMAGE, IOT_HUB_IMAGE, IOT_KAFKA_IMAGE, ... -> the image built or chosen for it."""
    return build_images(pytestconfig)


@pytest.fixture(scope="session")
def docker_client(images: dict[str, str]) -> Iterator[docker.DockerClient]:
    client = docker.from_env(timeout=120)
    yield client
    client.close()
