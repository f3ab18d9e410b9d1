"""The edge and hub images as `make images` builds them, run on the real engine: both exist and
run as uid 10001, the edge image holds none of the hub's dependencies, and each image's own
HEALTHCHECK turns healthy: the edge's while Kafka is away (it buffers), the hub's web app with
PostgreSQL and Redis from the images compose uses."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import docker
import pytest
from docker.models.containers import Container

from tests.support.waiting import wait_until

# The first run builds everything (minutes); the images fixture's time counts towards the test's.
pytestmark = [pytest.mark.containers, pytest.mark.timeout(3600)]

HUB_ONLY_MODULES = ("faust", "nicegui", "asyncpg", "plotly")
HEALTH_TIMEOUT_S = 180


@contextmanager
def running(client: docker.DockerClient, image: str, **kwargs: Any) -> Iterator[Container]:
    """A detached container, force-removed by its id afterwards whatever happened."""
    container = client.containers.run(image, detach=True, **kwargs)
    try:
        yield container
    finally:
        client.api.remove_container(container.id, force=True, v=True)


def health(container: Container) -> str:
    container.reload()
    if container.status not in ("created", "running"):
        return f"exited ({container.attrs['State']['ExitCode']})"
    return str(container.attrs["State"]["Health"]["Status"])


def wait_healthy(container: Container) -> None:
    """Until the image's HEALTHCHECK reports healthy; fails at once on unhealthy or exit."""
    try:
        state = wait_until(
            lambda: (s := health(container)) != "starting" and s,
            HEALTH_TIMEOUT_S,
            f"{container.name} healthy",
            interval=1.0,
        )
    except TimeoutError as exc:
        state = str(exc)
    logs = container.logs(tail=40).decode(errors="replace")
    assert state == "healthy", f"{container.name}: {state}\n{logs}"


def published_port(container: Container, port: str) -> int:
    container.reload()
    (binding,) = container.attrs["NetworkSettings"]["Ports"][port]
    assert binding["HostIp"] == "127.0.0.1"
    return int(binding["HostPort"])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.mark.parametrize("variable", ["IOT_EDGE_IMAGE", "IOT_HUB_IMAGE"])
def test_image_runs_as_the_unprivileged_user(
    docker_client: docker.DockerClient, images: dict[str, str], variable: str
) -> None:
    image = docker_client.images.get(images[variable])
    config = image.attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["Healthcheck"]["Test"][0] == "CMD"
    # The CA bundle of the build is a secret: neither a setting nor a file in the image.
    assert not any(e.startswith(("PIP_CERT=", "REQUESTS_CA_BUNDLE=")) for e in config["Env"])
    out = docker_client.containers.run(
        image.id,
        entrypoint=["sh", "-c", "id -u; id -g; test ! -e /run/secrets/ca && echo no-secret"],
        remove=True,
    )
    assert out.decode().split() == ["10001", "10001", "no-secret"]


def test_edge_image_has_no_hub_dependencies(
    docker_client: docker.DockerClient, images: dict[str, str]
) -> None:
    probe = (
        "import importlib.util, json, sys; "
        "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in sys.argv[1:]}))"
    )
    out = docker_client.containers.run(
        images["IOT_EDGE_IMAGE"],
        entrypoint=["python", "-c", probe, *HUB_ONLY_MODULES, "aiokafka", "amqtt", "edge_gateway"],
        remove=True,
    )
    found = json.loads(out)
    assert [m for m in HUB_ONLY_MODULES if found[m]] == []
    assert found["aiokafka"]
    assert found["amqtt"]
    assert found["edge_gateway"]
    # ...and no pip left in the runtime image.
    out = docker_client.containers.run(
        images["IOT_EDGE_IMAGE"],
        entrypoint=[
            "python",
            "-c",
            "import importlib.util; print(importlib.util.find_spec('pip'))",
        ],
        remove=True,
    )
    assert out.decode().strip() == "None"


def test_edge_turns_healthy_while_kafka_is_away(
    docker_client: docker.DockerClient, images: dict[str, str]
) -> None:
    with running(
        docker_client,
        images["IOT_EDGE_IMAGE"],
        name=f"iot-test-edge-{uuid.uuid4().hex[:8]}",
        # Nothing listens there: the gateway buffers and stays healthy.
        environment={"EDGE_KAFKA_BOOTSTRAP": "127.0.0.1:9", "EDGE_GATEWAY_ID": "edge-test"},
        ports={"8081/tcp": ("127.0.0.1", None), "1883/tcp": ("127.0.0.1", None)},
    ) as edge:
        wait_healthy(edge)
        port = published_port(edge, "8081/tcp")
        status = get_json(f"http://127.0.0.1:{port}/api/v1/status")
        assert status["kafka"]["connected"] is False
        assert status["mqtt"]["connected"] is True


@pytest.fixture
def network(docker_client: docker.DockerClient) -> Iterator[str]:
    net = docker_client.networks.create(f"iot-test-{uuid.uuid4().hex[:8]}")
    try:
        yield str(net.name)
    finally:
        docker_client.api.remove_network(net.id)


def test_hub_web_turns_healthy_with_postgres_and_redis(
    docker_client: docker.DockerClient, images: dict[str, str], network: str
) -> None:
    password = uuid.uuid4().hex
    with (
        running(
            docker_client,
            images["IOT_POSTGRES_IMAGE"],
            name=f"{network}-postgres",
            network=network,
            environment={
                "POSTGRES_USER": "iot",
                "POSTGRES_DB": "iot",
                "POSTGRES_PASSWORD": password,
            },
        ) as postgres,
        running(
            docker_client,
            images["IOT_REDIS_IMAGE"],
            name=f"{network}-redis",
            network=network,
            command=["redis-server", "--appendonly", "yes"],
        ) as redis,
    ):
        env = {
            "HUB_DATABASE_URL": f"postgresql://iot:{password}@{postgres.name}:5432/iot",
            "HUB_REDIS_URL": f"redis://{redis.name}:6379/0",
            "HUB_WEB_STORAGE_SECRET": uuid.uuid4().hex,
        }

        def postgres_ready() -> bool:
            code, _ = postgres.exec_run(["pg_isready", "-U", "iot", "-d", "iot", "-h", "127.0.0.1"])
            return int(code) == 0

        wait_until(postgres_ready, 120, "PostgreSQL ready", interval=0.5)
        with running(
            docker_client,
            images["IOT_HUB_IMAGE"],
            command=["migrate"],
            network=network,
            environment=env,
        ) as migrate:
            result = migrate.wait(timeout=120)
            assert result["StatusCode"] == 0, migrate.logs().decode(errors="replace")
        with running(
            docker_client,
            images["IOT_HUB_IMAGE"],
            name=f"{network}-web",
            network=network,
            environment=env,
            ports={"8080/tcp": ("127.0.0.1", None)},
        ) as web:
            wait_healthy(web)
            port = published_port(web, "8080/tcp")
            assert get_json(f"http://127.0.0.1:{port}/readyz")
