"""The deployment docs, env examples, compose files and chart name only settings, variables,
topics and profiles that exist, and their device examples pass the gateway's own decoder."""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import pytest
import yaml

from edge_gateway.settings import EdgeSettings
from hub.settings import HUB_DLQ_TOPIC, HubSettings
from protocol import DevicePayload, StatusPayload, decode_telemetry, parse_mqtt_topic
from protocol.topics import DEVICE_METADATA, KAFKA_TOPICS
from tests.deploy.tools import ROOT

pytestmark = pytest.mark.deploy

DOCS = [
    ROOT / "docs" / name
    for name in ("deploy-edge.md", "deploy-hub.md", "devices.md", "rules.md", "device-metadata.md")
]
COMPOSE = [ROOT / "compose.edge.yml", ROOT / "compose.hub.yml"]
ENV_EXAMPLES = [ROOT / "edge.env.example", ROOT / "hub.env.example"]
CHART_FILES = sorted((ROOT / "helm" / "iot-hub").rglob("*.yaml")) + sorted(
    (ROOT / "helm" / "iot-hub").rglob("*.tpl")
)
ALL_FILES = DOCS + COMPOSE + ENV_EXAMPLES + CHART_FILES + [ROOT / "Dockerfile"]
NICEGUI_VARIABLES = {"NICEGUI_REDIS_URL", "NICEGUI_STORAGE_PATH"}


def setting_names() -> set[str]:
    edge = {f"EDGE_{name.upper()}" for name in EdgeSettings.model_fields}
    hub = {f"HUB_{name.upper()}" for name in HubSettings.model_fields}
    return edge | hub


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_setting_named_exists(path: Path) -> None:
    named = set(re.findall(r"\b(?:EDGE|HUB)_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    assert named - setting_names() == set()


def test_nicegui_variables_are_the_ones_nicegui_reads() -> None:
    import nicegui.storage

    source = Path(nicegui.storage.__file__).read_text()
    for name in NICEGUI_VARIABLES:
        assert f"'{name}'" in source
    named: set[str] = set()
    for path in ALL_FILES:
        named |= set(re.findall(r"\bNICEGUI_[A-Z0-9_]+\b", path.read_text()))
    assert named <= NICEGUI_VARIABLES


def compose_variables() -> set[str]:
    return {v for p in COMPOSE for v in re.findall(r"\$\{(\w+)", p.read_text())}


def test_compose_variables_in_the_docs_exist() -> None:
    defined = compose_variables()
    for path in [*DOCS, *ENV_EXAMPLES]:
        named = set(re.findall(r"\bIOT_[A-Z0-9_]+\b", path.read_text()))
        assert named - defined == set(), path.name
    assert "POSTGRES_PASSWORD" in defined


def test_profiles_in_the_docs_exist() -> None:
    profiles = {
        profile
        for path in COMPOSE
        for service in yaml.safe_load(path.read_text())["services"].values()
        for profile in service.get("profiles", [])
    }
    assert profiles == {"mosquitto", "simulators"}
    for path in DOCS:
        assert set(re.findall(r"--profile (\w+)", path.read_text())) <= profiles


def test_kafka_topics_in_the_docs_exist() -> None:
    known = {*KAFKA_TOPICS, DEVICE_METADATA, HUB_DLQ_TOPIC}
    for path in DOCS:
        named = set(re.findall(r"`(iot\.[a-z.-]+)`", path.read_text()))
        assert named - known == set(), path.name


def test_chart_examples_named_in_the_docs_exist() -> None:
    examples = {p.name for p in (ROOT / "helm" / "iot-hub" / "examples").glob("*.yaml")}
    text = (ROOT / "docs" / "deploy-hub.md").read_text()
    named = set(re.findall(r"`([a-z-]+\.yaml)`", text)) - {"my-values.yaml", "values.yaml"}
    assert named == {"strimzi.yaml", "bitnami.yaml", "aws-managed.yaml"}
    assert named <= examples


def devices_doc() -> str:
    return (ROOT / "docs" / "devices.md").read_text()


def test_json_payload_example_is_accepted() -> None:
    (block,) = re.findall(r"```json\n(.*?)```", devices_doc(), re.S)
    payload = DevicePayload.model_validate_json(block)
    assert payload.metrics


def test_mosquitto_pub_examples_are_accepted() -> None:
    now_ms = int(time.time() * 1000)
    text = devices_doc() + (ROOT / "docs" / "deploy-edge.md").read_text()
    examples = re.findall(r"-t (plant/\S+) \\?\s*\n?\s*-m (\"[^\n]*\"|'[^\n]*')", text)
    assert len(examples) >= 3
    for topic_text, quoted in examples:
        topic = parse_mqtt_topic(topic_text)
        body = quoted[1:-1].replace('\\"', '"').replace("$(date +%s%3N)", str(now_ms))
        if topic.kind == "status":
            StatusPayload.model_validate_json(body)
        else:
            reading = decode_telemetry(
                topic, body.encode(), received_ts=now_ms, gateway_id="docs-test"
            )
            assert reading.ts == now_ms


def test_python_device_example_parses_and_uses_the_contract_topics() -> None:
    (block,) = re.findall(r"```python\n(.*?)```", devices_doc(), re.S)
    tree = ast.parse(block)
    assert any(isinstance(node, ast.Import) for node in tree.body)
    assert 'f"plant/{SITE}/{DEVICE}/telemetry"' in block
    assert 'f"plant/{SITE}/{DEVICE}/status"' in block
    assert "CallbackAPIVersion.VERSION2" in block
    assert "will_set(STATUS" in block
