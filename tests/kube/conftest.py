"""Kubernetes tests: the single-node cluster of scripts/kube (built on first use, about 10
minutes; then it starts in seconds), the images of `make images` loaded into it, and Kafka,
PostgreSQL and Redis in namespace iot-deps (`scripts/kube deps`). What the session starts it
stops: the deps if they were not there, the cluster if it was not running."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.containers.images import build_images
from tests.deploy.tools import install_tool
from tests.kube import cluster
from tests.kube.cluster import DEPS_NS, Helm
from tests.support.waiting import wait_until


@pytest.fixture(scope="session")
def kube_images(pytestconfig: pytest.Config) -> dict[str, str]:
    """IOT_HUB_IMAGE, IOT_KAFKA_IMAGE, ... -> the image `make images` built (as tests/containers'
    `images`; a second call in one session only checks the build cache: 2 s)."""
    return build_images(pytestconfig)


@pytest.fixture(scope="session")
def kube(pytestconfig: pytest.Config, kube_images: dict[str, str]) -> Iterator[str]:
    """The running cluster with the images loaded and the deps Ready; its kubeconfig."""
    was_running = cluster.cluster_running()
    # start loads the images of .local/images.env from the Docker engine (those not current).
    cluster.run_kube_script(pytestconfig, "start")
    had_deps = bool(cluster.kubectl("get", "namespace", DEPS_NS, "--ignore-not-found").strip())
    try:
        cluster.run_kube_script(pytestconfig, "deps")
        wait_until(cluster.deps_answer, 300, "PostgreSQL and Redis answering in the cluster", 1.0)
        yield cluster.kubeconfig()
    finally:
        if not had_deps:
            cluster.kubectl("delete", "namespace", DEPS_NS, "--wait=true", timeout=300)
        if not was_running:
            cluster.run_kube_script(pytestconfig, "stop")


@pytest.fixture(scope="session")
def kube_helm(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory, kube: str
) -> Helm:
    return Helm(install_tool("helm", pytestconfig), tmp_path_factory.mktemp("helm-home"), kube)
