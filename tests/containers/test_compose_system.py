"""The whole system from the compose files on the real Docker engine, as a user runs it:
simulators -> edge container -> Kafka container -> hub worker -> PostgreSQL and Redis
containers -> web container, from the images `make images` built. Then what operators do to it:
kill and restart containers mid-stream, and check that nothing is lost or duplicated.

The tests of this module share one compose project and run in order; the last ones compare
everything that reached Kafka with what is in PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from tests.containers.project import ComposeProject
from tests.deploy.tools import install_tool
from tests.support.kafka import partitions_of
from tests.support.process import free_port
from tests.support.waiting import async_wait_until, wait_until

# The first test waits for a cold system (images just built, Kafka and the worker starting).
pytestmark = [pytest.mark.containers, pytest.mark.timeout(900)]

SERVICES = ("kafka", "postgres", "redis", "worker", "web", "mosquitto", "edge")
TYPES = {"cnc_spindle", "hydraulic_press", "conveyor", "air_compressor", "cleanroom_env"}
Key = tuple[str, str, int]


class System:
    def __init__(self, project: ComposeProject, ports: dict[str, int]) -> None:
        self.project = project
        self.ports = ports

    @property
    def kafka(self) -> str:
        return f"127.0.0.1:{self.ports['kafka']}"

    def http(self, port_name: str, path: str, token: str | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports[port_name]}{path}")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, None

    def edge_status(self) -> dict[str, Any]:
        code, body = self.http("edge_http", "/api/v1/status")
        assert code == 200
        status: dict[str, Any] = body
        return status


@pytest.fixture(scope="module")
def system(
    pytestconfig: pytest.Config,
    images: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[System]:
    directory = tmp_path_factory.mktemp("compose-system")
    ports = {name: free_port() for name in ("web", "kafka", "mqtt", "edge_http", "mosquitto")}
    # The gateway behind Mosquitto, whose persistent session for the bridge is what lets a
    # SIGKILLed gateway lose nothing it had acknowledged; with the embedded broker, messages the
    # broker accepted but had not handed over die with the process (README, delivery guarantees).
    # The embedded broker, the default, is what the lone-gateway test below runs.
    (directory / "edge.env").write_text("EDGE_MQTT_URL=mqtt://mosquitto:1883\n")
    # Everything on loopback; the worker and the web app on a read-only root file system with a
    # writable /tmp, as the Helm chart runs them.
    (directory / "compose.test.yml").write_text(
        f"""
services:
  kafka:
    ports: !override
      - "127.0.0.1:{ports["kafka"]}:9094"
  worker:
    read_only: true
    tmpfs: [/tmp]
  web:
    read_only: true
    tmpfs: [/tmp]
"""
    )
    project = ComposeProject(
        install_tool("compose", pytestconfig),
        directory,
        ("compose.hub.yml", "compose.edge.yml", "compose.test.yml"),
        {
            **images,
            "IOT_HUB_HTTP_PORT": f"127.0.0.1:{ports['web']}",
            "IOT_KAFKA_EXTERNAL_HOST": "127.0.0.1",
            "IOT_KAFKA_EXTERNAL_PORT": str(ports["kafka"]),
            "IOT_EDGE_MQTT_PORT": f"127.0.0.1:{ports['mqtt']}",
            "IOT_EDGE_HTTP_PORT": f"127.0.0.1:{ports['edge_http']}",
            "IOT_MOSQUITTO_PORT": f"127.0.0.1:{ports['mosquitto']}",
            "IOT_SIMULATE_MQTT_URL": "mqtt://mosquitto:1883",
            "IOT_SIMULATE_COUNT": "1",
        },
        profiles=("simulators", "mosquitto"),
    )
    try:
        project.up()
        yield System(project, ports)
    finally:
        project.down()


def test_the_whole_system_runs_from_the_images(system: System) -> None:
    project = system.project
    project.wait_health(SERVICES, "healthy", timeout=300)

    def every_type_stored() -> bool:
        rows = project.sql(
            "SELECT DISTINCT d.type FROM readings r JOIN devices d USING (device_id)"
        )
        return {row[0] for row in rows} >= TYPES

    try:
        # A cold first start on a loaded 2-core machine once took more than 180 s.
        wait_until(every_type_stored, 300, "readings of all five types in PostgreSQL", 1.0)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{_pipeline_state(project)}") from None
    assert system.http("web", "/healthz") == (200, {"status": "ok"})
    token = project.exec("web", "iot-hub", "token", "create", "e2e", "--role", "viewer").strip()
    assert token.startswith("iot_")
    code, devices = system.http("web", "/api/v1/devices", token)
    assert code == 200
    assert {d["type"] for d in devices["items"]} >= TYPES
    assert system.http("web", "/api/v1/devices")[0] == 401


def _pipeline_state(project: ComposeProject) -> str:
    """Where the readings stopped: the rows per type, and each stage's latest log lines."""
    rows = project.sql(
        "SELECT coalesce(d.type, '?'), count(*) FROM readings r "
        "LEFT JOIN devices d USING (device_id) GROUP BY 1"
    )
    logs = {
        s: project.container(s).logs(tail=40).decode(errors="replace")
        for s in ("simulators", "edge", "worker")
    }
    return f"rows per type: {rows}\n" + "\n".join(f"--- {s}\n{t}" for s, t in logs.items())


def test_containers_run_unprivileged_and_the_hub_on_a_read_only_root(system: System) -> None:
    project = system.project
    for service in ("edge", "worker", "web", "simulators"):
        assert project.exec(service, "id", "-u").strip() == "10001", service
    for service in ("worker", "web"):
        container = project.container(service)
        assert container.attrs["HostConfig"]["ReadonlyRootfs"] is True
        code, _ = container.exec_run(["touch", "/home/iot/probe"])
        assert code != 0, f"{service} could write to its root file system"
    # ...and both work that way: healthy, the worker writing rows (checked above and below).
    project.wait_health(("worker", "web"), "healthy", timeout=60)


def test_a_stopped_process_turns_its_container_unhealthy_and_back(system: System) -> None:
    """SIGSTOP to the container's main process, from the host: the healthcheck times out."""
    project = system.project
    services = ("edge", "web")
    pids = {s: int(project.container(s).attrs["State"]["Pid"]) for s in services}
    try:
        for pid in pids.values():
            os.kill(pid, signal.SIGSTOP)
        project.wait_health(services, "unhealthy", timeout=180)
    finally:
        for pid in pids.values():
            os.kill(pid, signal.SIGCONT)
    project.wait_health(services, "healthy", timeout=180)


def test_the_worker_killed_mid_stream_comes_back(system: System) -> None:
    project = system.project
    worker = project.container("worker")
    before = int(project.sql("SELECT count(*) FROM readings")[0][0])
    worker.kill()
    wait_until(lambda: _state(worker) == "exited", 30, "the worker killed")
    worker.start()
    project.wait_health(("worker",), "healthy", timeout=180)
    wait_until(
        lambda: int(project.sql("SELECT count(*) FROM readings")[0][0]) > before,
        120,
        "new rows after the restart",
        1.0,
    )


def test_kafka_restarted_the_edge_buffers_and_drains(system: System) -> None:
    project = system.project
    kafka = project.container("kafka")
    kafka.stop(timeout=30)
    seen: list[dict[str, Any]] = []

    def buffering() -> bool:
        seen.append(status := system.edge_status())
        # Some seconds of readings held back, with the link known down: buffering, not in flight.
        return status["buffer"]["depth"] >= 20 and not status["kafka"]["connected"]

    try:
        wait_until(buffering, 120, "the edge buffering while Kafka is away", 0.5)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; its last status: {seen[-1]}") from None
    finally:
        kafka.start()
    project.wait_health(("kafka",), "healthy", timeout=180)
    wait_until(
        lambda: (s := system.edge_status())["kafka"]["connected"] and s["buffer"]["depth"] == 0,
        180,
        "the edge's buffer drained",
        0.5,
    )


def test_the_edge_stopped_mid_stream_exits_cleanly(system: System) -> None:
    project = system.project
    edge = project.container("edge")
    edge.stop(timeout=30)
    edge.reload()
    assert edge.attrs["State"]["ExitCode"] == 0
    assert "gateway_stopped" in edge.logs(tail=20).decode(errors="replace")
    edge.start()
    project.wait_health(("edge",), "healthy", timeout=120)


def test_the_edge_killed_then_up_again_on_its_volume(system: System) -> None:
    project = system.project
    edge = project.container("edge")
    edge.kill()
    wait_until(lambda: _state(edge) == "exited", 30, "the edge killed")
    project.up("edge")
    project.wait_health(("edge",), "healthy", timeout=120)
    # Compose may start the container again or recreate it: either way on the same volume.
    assert _buffer_volume(project.container("edge")) == _buffer_volume(edge)


def test_every_reading_in_kafka_is_in_postgresql_once(system: System) -> None:
    """After every kill and restart above: stop the devices, let the edge and the worker catch up,
    then compare. Per device, the seq run has no gap (what the edge acknowledged reached Kafka),
    and PostgreSQL holds exactly the readings Kafka holds."""
    project = system.project
    project.container("simulators").stop(timeout=30)
    wait_until(lambda: system.edge_status()["buffer"]["depth"] == 0, 120, "edge drained", 0.5)
    kafka_readings = asyncio.run(_read_all(system.kafka))
    asyncio.run(_wait_consumed(system.kafka, "iot-hub", timeout=180))
    seqs: dict[str, list[int]] = defaultdict(list)
    kafka_keys: set[Key] = set()
    for reading in kafka_readings:
        seqs[reading["device_id"]].append(reading["seq"])
        kafka_keys |= {(reading["device_id"], m, reading["ts"]) for m in reading["metrics"]}
    assert len(seqs) == len(TYPES)
    gaps = {
        device: sorted(set(range(min(run), max(run) + 1)) - set(run))
        for device, run in seqs.items()
    }
    if any(gaps.values()):
        dead = asyncio.run(_read_all(system.kafka, "iot.telemetry.dlq"))
        logs = project.container("edge").logs(tail=200).decode(errors="replace")
        raise AssertionError(f"seq gaps {gaps}; dead letters {dead[-20:]}; edge log:\n{logs}")
    rows = project.sql(
        "SELECT device_id, metric, (extract(epoch FROM ts) * 1000)::bigint FROM readings"
    )
    stored = [(d, m, int(ts)) for d, m, ts in rows]
    assert len(stored) == len(set(stored))
    assert set(stored) == kafka_keys


def test_the_edge_alone_against_a_kafka_elsewhere(
    pytestconfig: pytest.Config, system: System, tmp_path: Path, images: dict[str, str]
) -> None:
    """compose.edge.yml without the hub's file: its gateway on the system's network, told where
    Kafka is in edge.env, as on a factory host."""
    (tmp_path / "edge.env").write_text(
        "EDGE_KAFKA_BOOTSTRAP=kafka:9092\nEDGE_GATEWAY_ID=gw-alone\nEDGE_SITE=site-alone\n"
    )
    edge_only = ComposeProject(
        install_tool("compose", pytestconfig),
        tmp_path,
        ("compose.edge.yml", "compose.test.yml"),
        # The simulators container has no login for the embedded broker.
        {**images, "IOT_SIMULATE_COUNT": "1", "IOT_EDGE_MQTT_ALLOW_ANONYMOUS": "true"},
        profiles=("simulators",),
    )
    # On the system's network the name `edge` is the system's gateway too: the lone simulators
    # address their own gateway by its container name.
    (tmp_path / "compose.test.yml").write_text(
        f"""
networks:
  default:
    name: {system.project.name}_default
    external: true
services:
  edge:
    ports: !override
      - "127.0.0.1:{free_port()}:8081"
  simulators:
    command: ["simulate", "--site", "site-alone", "--mqtt-url", "mqtt://{edge_only.name}-edge-1"]
"""
    )
    try:
        edge_only.up()
        edge_only.wait_health(("edge",), "healthy", timeout=120)
        wait_until(
            lambda: (
                system.project.sql("SELECT count(*) FROM devices WHERE gateway_id = 'gw-alone'")[0][
                    0
                ]
                == str(len(TYPES))
            ),
            180,
            "the lone gateway's devices stored by the hub",
            1.0,
        )
    finally:
        edge_only.down()


def _state(container: Any) -> str:
    container.reload()
    return str(container.attrs["State"]["Status"])


def _buffer_volume(container: Any) -> str:
    mounts = container.attrs["Mounts"]
    return next(str(m["Name"]) for m in mounts if m["Destination"] == "/var/lib/iot-edge")


async def _read_all(bootstrap: str, topic: str = "iot.telemetry") -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = await partitions_of(bootstrap, topic)
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        out: list[Any] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < end for tp, end in ends.items()])

        while await behind():
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                out += [d for r in batch if r.value is not None for d in _decoded(r)]
        return out
    finally:
        await consumer.stop()


def _decoded(record: Any) -> list[Any]:
    try:
        body = json.loads(record.value)
    except ValueError:  # a dead letter: the raw payload and why
        return [{"value": record.value[:200], "headers": dict(record.headers)}]
    # A version 2 iot.telemetry value holds several readings.
    return body["readings"] if isinstance(body, dict) and body.get("v") == 2 else [body]


async def _wait_consumed(bootstrap: str, group: str, timeout: float) -> None:
    """Until the group's committed offsets on iot.telemetry reach the end of every partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        partitions = await partitions_of(bootstrap, "iot.telemetry")
        ends = await consumer.end_offsets(partitions)

        async def caught_up() -> bool:
            committed = await admin.list_consumer_group_offsets(group)
            return all(
                committed.get(tp) is not None and committed[tp].offset >= end
                for tp, end in ends.items()
                if end > 0
            )

        await async_wait_until(caught_up, timeout, f"group {group} caught up", 1.0)
    finally:
        await admin.close()
        await consumer.stop()
