"""The compose files, as Docker Compose v2 itself reads them (`docker-compose config`): valid
against the Compose specification, health-gated start order, state on named volumes, restart
policies, profiles, and the edge and hub files combining into one demo."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.compose import Compose, ComposeError
from tests.deploy.tools import ROOT

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1800)]

EDGE = "compose.edge.yml"
HUB = "compose.hub.yml"
HUB_SERVICES = {"kafka", "postgres", "redis", "migrate", "worker", "web"}
LONG_RUNNING_HUB = HUB_SERVICES - {"migrate"}


def healthcheck_command(service: dict[str, Any]) -> str:
    check = service["healthcheck"]
    assert not check.get("disable"), "healthcheck disabled"
    return " ".join(check["test"])


def named_volume_targets(model: dict[str, Any], service: str) -> dict[str, str]:
    """target -> named volume, for the volumes of `service` that are declared at the top level."""
    return {
        v["target"]: v["source"]
        for v in model["services"][service].get("volumes", [])
        if v["type"] == "volume" and v["source"] in model.get("volumes", {})
    }


def test_edge_alone(compose: Compose) -> None:
    model = compose.config(EDGE)
    # No profile: the gateway alone, simulators and Mosquitto only when asked for.
    assert set(model["services"]) == {"edge"}
    edge = model["services"]["edge"]
    assert edge["build"]["target"] == "edge"
    assert "hub" not in edge["image"]
    assert edge["command"] == ["run"]
    # Without EDGE_GATEWAY_ID the id is edge-<hostname>: it must not change with the container.
    assert edge["hostname"] == "gateway"
    assert edge["restart"] == "unless-stopped"
    published = {p["target"]: p["published"] for p in edge["ports"]}
    assert published == {1883: "1883", 8081: "8081"}
    env = edge["environment"]
    assert env["EDGE_MQTT_PORT"] == "1883"
    assert env["EDGE_HTTP_PORT"] == "8081"
    buffer_dir = env["EDGE_BUFFER_PATH"].rsplit("/", 1)[0]
    assert named_volume_targets(model, "edge") == {buffer_dir: "edge-buffer"}
    assert "http://127.0.0.1:8081/readyz" in healthcheck_command(edge)
    # Simulators are off unless asked for: nothing here turns them on.
    assert env.get("EDGE_SIMULATORS", "none") == "none"
    # Anonymous MQTT clients are refused unless the demo asks for them.
    assert env["EDGE_MQTT_ALLOW_ANONYMOUS"] == "false"
    # The edge never carries the hub: its own image target, no HUB_ settings.
    assert not any(name.startswith("HUB_") for name in env)


def test_edge_settings_come_from_the_env_file_when_present(compose: Compose) -> None:
    (compose.directory / "edge.env").write_text(
        "EDGE_SITE=plant-9\nEDGE_KAFKA_BOOTSTRAP=hub.example.com:9094\nEDGE_SIMULATORS=all\n"
        "EDGE_BUFFER_PATH=/elsewhere.db\n"
    )
    env = compose.config(EDGE)["services"]["edge"]["environment"]
    assert env["EDGE_SITE"] == "plant-9"
    assert env["EDGE_KAFKA_BOOTSTRAP"] == "hub.example.com:9094"
    assert env["EDGE_SIMULATORS"] == "all"
    # ...except what the compose file owns: the buffer stays on its volume.
    assert env["EDGE_BUFFER_PATH"] == "/var/lib/iot-edge/buffer.db"


def test_anonymous_mqtt_is_a_compose_variable_for_the_demo(compose: Compose) -> None:
    model = compose.config(EDGE, env={"IOT_EDGE_MQTT_ALLOW_ANONYMOUS": "true"})
    assert model["services"]["edge"]["environment"]["EDGE_MQTT_ALLOW_ANONYMOUS"] == "true"


def test_host_ports_are_compose_variables(compose: Compose) -> None:
    model = compose.config(EDGE, env={"IOT_EDGE_MQTT_PORT": "11883"})
    published = {p["target"]: p["published"] for p in model["services"]["edge"]["ports"]}
    assert published[1883] == "11883"


def test_mosquitto_profile(compose: Compose) -> None:
    model = compose.config(EDGE, profiles=("mosquitto",))
    assert set(model["services"]) == {"edge", "mosquitto"}
    mosquitto = model["services"]["mosquitto"]
    assert mosquitto["image"].startswith("eclipse-mosquitto:2")
    assert mosquitto["restart"] == "unless-stopped"
    assert "mosquitto_sub" in healthcheck_command(mosquitto)
    assert named_volume_targets(model, "mosquitto") == {"/mosquitto/data": "mosquitto-data"}
    (config,) = mosquitto["configs"]
    assert config["target"] == "/mosquitto/config/mosquitto.conf"
    content = model["configs"][config["source"]]["content"]
    assert "listener 1883" in content
    assert "persistence true" in content
    # The gateway waits for the broker when the profile is on, and not otherwise.
    dependency = model["services"]["edge"]["depends_on"]["mosquitto"]
    assert dependency["condition"] == "service_healthy"
    assert dependency["required"] is False


def test_simulators_profile(compose: Compose) -> None:
    model = compose.config(EDGE, profiles=("simulators",))
    assert set(model["services"]) == {"edge", "simulators"}
    simulators = model["services"]["simulators"]
    assert simulators["image"] == model["services"]["edge"]["image"]
    assert simulators["build"]["target"] == "edge"
    assert simulators["command"][:3] == ["simulate", "--mqtt-url", "mqtt://edge:1883"]
    assert simulators["depends_on"]["edge"]["condition"] == "service_healthy"
    assert simulators["healthcheck"]["disable"] is True


def test_hub_alone(compose: Compose) -> None:
    model = compose.config(HUB)
    services = model["services"]
    assert set(services) == HUB_SERVICES
    assert services["kafka"]["image"].startswith("apache/kafka:4.0.")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    for name in ("migrate", "worker", "web"):
        assert services[name]["build"]["target"] == "hub"
        env = services[name]["environment"]
        assert env["HUB_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["HUB_DATABASE_URL"].endswith("@postgres:5432/iot")
        assert env["HUB_REDIS_URL"] == "redis://redis:6379/0"
    assert services["migrate"]["command"] == ["migrate"]
    assert services["worker"]["command"] == ["worker"]
    assert services["web"]["entrypoint"][-1].rstrip().endswith("exec iot-hub web")


def test_hub_starts_in_order_on_health(compose: Compose) -> None:
    services = compose.config(HUB)["services"]

    def conditions(name: str) -> dict[str, str]:
        return {dep: v["condition"] for dep, v in services[name].get("depends_on", {}).items()}

    assert conditions("migrate") == {"postgres": "service_healthy"}
    assert conditions("worker") == {
        "migrate": "service_completed_successfully",
        "kafka": "service_healthy",
        "postgres": "service_healthy",
        "redis": "service_healthy",
    }
    assert conditions("web") == {
        "migrate": "service_completed_successfully",
        "postgres": "service_healthy",
        "redis": "service_healthy",
    }
    # Every condition is backed by a real healthcheck on the service waited for.
    for name in ("kafka", "postgres", "redis"):
        assert healthcheck_command(services[name])
    assert "http://127.0.0.1:6066/readyz" in healthcheck_command(services["worker"])
    assert "http://127.0.0.1:8080/readyz" in healthcheck_command(services["web"])
    assert services["migrate"]["healthcheck"]["disable"] is True


def test_hub_restart_policies_and_state_volumes(compose: Compose) -> None:
    model = compose.config(HUB)
    services = model["services"]
    for name in LONG_RUNNING_HUB:
        assert services[name]["restart"] == "unless-stopped", name
    assert services["migrate"]["restart"] == "no"
    assert named_volume_targets(model, "kafka") == {"/var/lib/kafka/data": "kafka-data"}
    assert services["kafka"]["environment"]["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert named_volume_targets(model, "postgres") == {"/var/lib/postgresql/data": "postgres-data"}
    assert named_volume_targets(model, "redis") == {"/data": "redis-data"}
    assert named_volume_targets(model, "web") == {"/var/lib/iot-hub": "web-state"}
    # Only the web app and Kafka's external listener are published; the databases are not.
    published = {name: s.get("ports", []) for name, s in services.items()}
    assert not published["postgres"]
    assert not published["redis"]
    assert [p["target"] for p in published["web"]] == [8080]
    assert [p["target"] for p in published["kafka"]] == [9094]


def test_hub_kafka_advertises_internal_and_external_listeners(compose: Compose) -> None:
    env = compose.config(HUB, env={"IOT_KAFKA_EXTERNAL_HOST": "hub.example.com"})["services"][
        "kafka"
    ]["environment"]
    advertised = dict(
        listener.split("://", 1) for listener in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    assert advertised == {"INTERNAL": "kafka:9092", "EXTERNAL": "hub.example.com:9094"}


def test_whole_demo_from_both_files(compose: Compose) -> None:
    model = compose.config(HUB, EDGE, profiles=("simulators",))
    services = model["services"]
    assert set(services) == HUB_SERVICES | {"edge", "simulators"}
    # One project network: the gateway reaches Kafka by its service name, the edge image's
    # default EDGE_KAFKA_BOOTSTRAP (kafka:9092, checked in test_dockerfile), since nothing in
    # the compose files overrides it.
    assert "EDGE_KAFKA_BOOTSTRAP" not in services["edge"]["environment"]
    assert set(services["edge"]["networks"]) == set(services["kafka"]["networks"]) == {"default"}
    assert "INTERNAL://kafka:9092" in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    # The gateway does not wait for Kafka: it buffers until Kafka is there.
    assert "kafka" not in services["edge"].get("depends_on", {})
    assert {v for v in model["volumes"]} >= {"edge-buffer", "kafka-data", "postgres-data"}


def test_compose_refuses_an_invalid_file(compose: Compose) -> None:
    # The tool really validates: a misspelt key and a dependency on nothing are errors.
    broken = (
        (compose.directory / EDGE)
        .read_text()
        .replace("restart: unless-stopped", "restrat: unless-stopped", 1)
    )
    (compose.directory / "broken.yml").write_text(broken)
    with pytest.raises(ComposeError, match="restrat"):
        compose.config("broken.yml")
    (compose.directory / "orphan.yml").write_text(
        "services:\n  a:\n    image: busybox\n    depends_on:\n"
        "      nothing:\n        condition: service_healthy\n"
    )
    with pytest.raises(ComposeError, match="nothing"):
        compose.config("orphan.yml")


KAFKA_SECURITY = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "edge-line-1",
    "KAFKA_SASL_PASSWORD": "test-only-password",
    "KAFKA_SSL_CAFILE": "/etc/iot/certs/ca.crt",
    "KAFKA_SSL_CERTFILE": "/etc/iot/certs/user.crt",
    "KAFKA_SSL_KEYFILE": "/etc/iot/certs/user.key",
    "KAFKA_SSL_CHECK_HOSTNAME": "true",
}


def env_file(prefix: str) -> str:
    return "".join(f"{prefix}{name}={value}\n" for name, value in KAFKA_SECURITY.items())


def docs_yaml_block(doc: str, marker: str) -> str:
    """The ```yaml block of docs/<doc> that follows `marker` (an override file's name)."""
    text = (ROOT / "docs" / doc).read_text()
    after = text[text.index(f"`{marker}`") :]
    return after.split("```yaml\n", 1)[1].split("```", 1)[0]


def bind_mounts(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["target"]: v for v in service.get("volumes", []) if v["type"] == "bind"}


def test_edge_kafka_security_settings_pass_through(compose: Compose) -> None:
    (compose.directory / "edge.env").write_text(env_file("EDGE_"))
    env = compose.config(EDGE)["services"]["edge"]["environment"]
    for name, value in KAFKA_SECURITY.items():
        assert env[f"EDGE_{name}"] == value, name


def test_edge_mounts_the_certificates_read_only_as_documented(compose: Compose) -> None:
    override = docs_yaml_block("deploy-edge.md", "compose.edge.local.yml")
    assert "./certs:/etc/iot/certs:ro" in override
    (compose.directory / "compose.edge.local.yml").write_text(override)
    (compose.directory / "certs").mkdir()
    edge = compose.config(EDGE, "compose.edge.local.yml")["services"]["edge"]
    certs = bind_mounts(edge)["/etc/iot/certs"]
    assert certs["read_only"] is True
    assert certs["source"] == str(compose.directory / "certs")
    # The buffer stays on its volume.
    assert named_volume_targets(compose.config(EDGE, "compose.edge.local.yml"), "edge")
    # The same line, commented, in compose.edge.yml itself.
    assert "# - ./certs:/etc/iot/certs:ro" in (compose.directory / EDGE).read_text()


def test_no_kafka_security_by_default(compose: Compose) -> None:
    # Nothing changes for the demo: PLAINTEXT unless an env file asks for more.
    model = compose.config(HUB, EDGE)
    for service in ("edge", "migrate", "worker", "web"):
        env = model["services"][service]["environment"]
        assert not [n for n in env if "_KAFKA_S" in n], service
        assert "/etc/iot/certs" not in bind_mounts(model["services"][service]), service


def test_hub_kafka_security_settings_pass_through(compose: Compose) -> None:
    (compose.directory / "hub.env").write_text(env_file("HUB_"))
    override = docs_yaml_block("deploy-hub.md", "compose.hub.local.yml")
    (compose.directory / "compose.hub.local.yml").write_text(override)
    model = compose.config(HUB, "compose.hub.local.yml")
    services = model["services"]
    for service in ("migrate", "worker", "web"):
        env = services[service]["environment"]
        for name, value in KAFKA_SECURITY.items():
            assert env[f"HUB_{name}"] == value, (service, name)
        # Every hub command checks the files it is given: each container has them, read-only.
        assert bind_mounts(services[service])["/etc/iot/certs"]["read_only"] is True, service
    assert services["worker"]["environment"]["HUB_KAFKA_BOOTSTRAP"] == "kafka.example.com:9093"
    # The override adds to the web app's volumes; its state volume stays.
    assert named_volume_targets(model, "web") == {"/var/lib/iot-hub": "web-state"}
