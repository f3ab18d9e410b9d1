"""MQTT security of a real gateway process: anonymous access refused by default, topic ACLs on
the embedded broker, its TLS listener with client certificates, and mqtts:// to a real Mosquitto
with a TLS listener. Kafka is left unreachable on purpose: what the bridge takes in is counted
in `received_total` and held in the buffer, so a refused publish that never reaches the bridge
can never reach Kafka either."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_gateway.broker import hash_password
from tests.support.certs import CertAuthority
from tests.support.gateway import GatewayProcess
from tests.support.mosquitto_tls import TlsMosquitto, mosquitto_binary
from tests.support.mqtt import Publisher
from tests.support.process import ROOT, free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SITE = "site-sec"
READING = {"metrics": {"ram_pressure_bar": 180.0}}


def counters(gw: GatewayProcess) -> dict[str, Any]:
    result: dict[str, Any] = gw.status()["counters"]
    return result


def gateway_env(**extra: str) -> dict[str, str]:
    return {
        "EDGE_SITE": SITE,
        # Nobody listens there: readings stay in the buffer, the gateway stays ready.
        "EDGE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "EDGE_MQTT_PORT": str(free_port()),
        **extra,
    }


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[list[GatewayProcess]]:
    """Gateways a test starts; each is stopped with SIGTERM afterwards and must exit 0."""
    started: list[GatewayProcess] = []
    yield started
    for gw in started:
        if gw.proc is not None:
            assert gw.terminate(forget_session=False) == 0, gw.log()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertAuthority:
    return CertAuthority(tmp_path_factory.mktemp("pki"))


def users_file(path: Path, **users: str) -> Path:
    path.write_text("".join(f"{user}:{hash_password(pw)}\n" for user, pw in users.items()))
    return path


def test_acl_keeps_each_device_to_its_own_topics(
    tmp_path: Path, gateway: list[GatewayProcess]
) -> None:
    passwd = users_file(tmp_path / "mqtt.passwd", **{"press-01": "s1", "press-02": "s2"})
    acl = tmp_path / "mqtt.acl"
    acl.write_text("# each device publishes under its own id only\npattern write plant/+/%u/#\n")
    env = gateway_env(EDGE_MQTT_PASSWORD_FILE=str(passwd), EDGE_MQTT_ACL_FILE=str(acl))
    gw = GatewayProcess(tmp_path / "gw", env)
    gateway.append(gw)
    # Ready means the bridge subscribed to every telemetry and status topic, although the ACL
    # grants no user any read access: it logs in with the gateway's internal credential.
    gw.start()
    port = int(env["EDGE_MQTT_PORT"])

    device = Publisher("127.0.0.1", port, "press-01-conn", username="press-01", password="s1")
    device.wait_connected()
    device.publish(f"plant/{SITE}/press-01/telemetry", READING)
    device.publish_all((f"plant/{SITE}/press-02/telemetry", READING) for _ in range(50))
    device.wait_acked()  # MQTT 3.1.1 cannot refuse a publish: the broker drops it after PUBACK
    refused: list[Any] = []
    subscribed = threading.Event()

    def on_subscribe(client: Any, userdata: Any, mid: int, reasons: list[Any], p: Any) -> None:
        refused.extend(r for r in reasons if r.is_failure)
        subscribed.set()

    device.client.on_subscribe = on_subscribe
    device.client.subscribe("plant/#", qos=1)
    wait_until(subscribed.is_set, 15, "SUBACK")
    device.close()

    c = wait_until(
        lambda: (c := counters(gw))["mqtt_publish_refused_total"] == 50 and c, 15, "refusals"
    )
    assert c["mqtt_subscribe_refused_total"] == 1
    assert len(refused) == 1
    assert wait_until(lambda: counters(gw)["readings_total"] == 1, 15, "the own reading")
    assert counters(gw)["received_total"] == 1  # the bridge never saw the other 50
    assert gw.status()["buffer"]["depth"] == 1
    code, metrics = gw.get("/metrics")
    assert code == 200
    assert 'edge_mqtt_refused_total{action="publish"} 50' in metrics
    assert 'edge_mqtt_refused_total{action="subscribe"} 1' in metrics
    log = gw.log()
    lines = [line for line in log.splitlines() if "event=mqtt_publish_refused" in line]
    assert 1 <= len(lines) < 50, "refusals are logged, rate-limited"
    assert "client_id=press-01-conn" in lines[0]
    assert f"topic=plant/{SITE}/press-02/telemetry" in lines[0]
    assert "s1" not in log.replace("press-01", "").replace("press-02", "")


@pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="mosquitto-clients missing")
def test_a_burst_through_the_acl_loses_nothing(
    tmp_path: Path, gateway: list[GatewayProcess]
) -> None:
    """amqtt drops what it acknowledged but had not delivered when a client disconnects; the ACL
    check must keep delivery up with the PUBACKs (broker._AclBroker)."""
    acl = tmp_path / "mqtt.acl"
    acl.write_text("# anonymous clients: telemetry only\ntopic write plant/+/+/telemetry\n")
    env = gateway_env(EDGE_MQTT_ALLOW_ANONYMOUS="true", EDGE_MQTT_ACL_FILE=str(acl))
    gw = GatewayProcess(tmp_path / "gw", env)
    gateway.append(gw)
    gw.start()
    total = 3000
    lines = "".join(f'{{"seq": {i}, "metrics": {{"temp_c": 21.5}}}}\n' for i in range(total))
    subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", env["EDGE_MQTT_PORT"], "-q", "1", "-l",
         "-i", "burst-1", "-t", f"plant/{SITE}/burst-1/telemetry"],
        input=lines.encode(),
        check=True,
        timeout=120,
    )  # fmt: skip
    # Every message was acknowledged (mosquitto_pub -l waits for the PUBACKs), then it left.
    assert wait_until(lambda: counters(gw)["readings_total"] == total, 60, "the whole burst")
    assert counters(gw)["mqtt_publish_refused_total"] == 0


def test_anonymous_refused_by_default_and_the_simulators_still_publish(
    tmp_path: Path, gateway: list[GatewayProcess]
) -> None:
    env = gateway_env(
        EDGE_SIMULATORS="all", EDGE_SIMULATOR_RATE_HZ="20", EDGE_SIMULATOR_ANOMALY_PROBABILITY="0"
    )
    gw = GatewayProcess(tmp_path / "gw", env)
    gateway.append(gw)
    gw.start()
    anonymous = Publisher("127.0.0.1", int(env["EDGE_MQTT_PORT"]), "anon-1")
    with pytest.raises(ConnectionRefusedError, match="Not authorized"):
        anonymous.wait_connected()
    anonymous.close()
    assert wait_until(lambda: counters(gw)["readings_total"] >= 50, 30, "simulated readings")
    assert counters(gw)["mqtt_connect_refused_total"] >= 1
    log = gw.log()
    assert "event=mqtt_connect_refused" in log
    assert "reason=anonymous" in log
    assert "event=mqtt_anonymous_access" not in log
    assert "EDGE_MQTT_ALLOW_ANONYMOUS=False" in log


def test_anonymous_access_beyond_loopback_is_warned_about_once(
    tmp_path: Path, gateway: list[GatewayProcess]
) -> None:
    env = gateway_env(EDGE_MQTT_ALLOW_ANONYMOUS="true", EDGE_MQTT_BIND="0.0.0.0")
    gw = GatewayProcess(tmp_path / "gw", env)
    gateway.append(gw)
    gw.start()
    anonymous = Publisher("127.0.0.1", int(env["EDGE_MQTT_PORT"]), "anon-1")
    anonymous.wait_connected()
    anonymous.publish(f"plant/{SITE}/oven-07/telemetry", READING)
    anonymous.wait_acked()
    anonymous.close()
    assert wait_until(lambda: counters(gw)["readings_total"] == 1, 15, "the reading")
    warnings = [line for line in gw.log().splitlines() if "event=mqtt_anonymous_access" in line]
    assert len(warnings) == 1
    assert f"0.0.0.0:{env['EDGE_MQTT_PORT']}" in warnings[0]


def tls_client(ca: CertAuthority, name: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert))
    if name is not None:
        issued = ca.issue(name, client=True)
        context.load_cert_chain(issued.cert, issued.key)
    return context


def test_tls_listener_requires_a_client_certificate_from_the_ca(
    tmp_path: Path, ca: CertAuthority, gateway: list[GatewayProcess]
) -> None:
    server = ca.issue("edge-gateway")
    passwd = users_file(tmp_path / "mqtt.passwd", **{"press-01": "s1"})
    tls_port = free_port()
    env = gateway_env(
        EDGE_MQTT_PASSWORD_FILE=str(passwd),
        EDGE_MQTT_TLS_PORT=str(tls_port),
        EDGE_MQTT_TLS_CERTFILE=str(server.cert),
        EDGE_MQTT_TLS_KEYFILE=str(server.key),
        EDGE_MQTT_TLS_CAFILE=str(ca.cert),
    )
    gw = GatewayProcess(tmp_path / "gw", env)
    gateway.append(gw)
    gw.start()

    def login(client_id: str, port: int, context: ssl.SSLContext | None) -> Publisher:
        host = "localhost" if context else "127.0.0.1"
        return Publisher(
            host, port, client_id, username="press-01", password="s1", tls_context=context
        )

    device = login("press-01", tls_port, tls_client(ca, "press-01"))
    device.wait_connected()
    device.publish(f"plant/{SITE}/press-01/telemetry", READING)
    device.wait_acked()
    device.close()
    assert wait_until(lambda: counters(gw)["readings_total"] == 1, 15, "the TLS reading")

    # The right password is not enough without a certificate, or with one another CA signed.
    stranger_ca = CertAuthority(tmp_path / "other-ca", name="other-ca")
    stranger = tls_client(ca, None)
    stranger_issued = stranger_ca.issue("press-01", client=True)
    stranger.load_cert_chain(stranger_issued.cert, stranger_issued.key)
    for context in (tls_client(ca, None), stranger):
        refused = login("press-01", tls_port, context)
        with pytest.raises(ConnectionRefusedError):
            refused.wait_connected()
        refused.close()
    # Plaintext on the TLS port gets nowhere either.
    plain = login("press-01", tls_port, None)
    with pytest.raises((ConnectionRefusedError, TimeoutError)):
        plain.wait_connected(timeout=5)
    plain.close()
    assert counters(gw)["readings_total"] == 1
    assert "Traceback" not in gw.log()


needs_mosquitto = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")


@needs_mosquitto
def test_mqtts_to_mosquitto_with_mutual_tls(
    tmp_path: Path, ca: CertAuthority, gateway: list[GatewayProcess]
) -> None:
    gateway_cert = ca.issue("edge-gateway-client", client=True)
    with TlsMosquitto(tmp_path / "mosquitto", ca, require_certificate=True) as broker:
        env = gateway_env(
            EDGE_MQTT_URL=broker.url,
            EDGE_MQTT_CAFILE=str(ca.cert),
            EDGE_MQTT_CERTFILE=str(gateway_cert.cert),
            EDGE_MQTT_KEYFILE=str(gateway_cert.key),
            EDGE_SIMULATORS="all",
            EDGE_SIMULATOR_RATE_HZ="20",
            EDGE_SIMULATOR_ANOMALY_PROBABILITY="0",
        )
        gw = GatewayProcess(tmp_path / "gw", env)
        gateway.append(gw)
        gw.start()  # the bridge subscribed over mqtts
        # The in-process simulators publish over mqtts too, and so can an outside device.
        assert wait_until(lambda: counters(gw)["readings_total"] >= 50, 30, "simulated readings")
        device = Publisher(
            broker.host, broker.port, "press-01", tls_context=tls_client(ca, "press-01")
        )
        device.wait_connected()
        device.publish(f"plant/{SITE}/press-77/telemetry", READING)
        device.wait_acked()
        device.close()
        assert wait_until(
            lambda: gw.status()["mqtt"]["connected"] and counters(gw)["readings_total"] > 50,
            15,
            "the outside reading",
        )
        status = gw.status()["mqtt"]
        assert status["mode"] == "external"
        mosquitto_log = broker.log_path.read_text()
        assert "New client connected" in mosquitto_log


@needs_mosquitto
def test_mqtts_with_an_untrusted_broker_certificate_never_falls_back(
    tmp_path: Path, ca: CertAuthority, gateway: list[GatewayProcess]
) -> None:
    other_ca = CertAuthority(tmp_path / "other-ca", name="other-ca")
    with TlsMosquitto(tmp_path / "mosquitto", ca, require_certificate=False) as broker:
        env = gateway_env(EDGE_MQTT_URL=broker.url, EDGE_MQTT_CAFILE=str(other_ca.cert))
        gw = GatewayProcess(tmp_path / "gw", env)
        gateway.append(gw)
        gw.launch()
        wait_until(lambda: "event=mqtt_connect_failed" in gw.log(), 30, "mqtt_connect_failed")
        line = next(x for x in gw.log().splitlines() if "event=mqtt_connect_failed" in x)
        assert "CERTIFICATE_VERIFY_FAILED" in line
        assert f"broker={broker.url}" in line
        code, body = gw.get("/readyz")
        assert code == 503
        assert '"mqtt_subscribed": false' in body
        assert "New client connected" not in broker.log_path.read_text()


@needs_mosquitto
def test_iot_edge_simulate_over_mqtts(tmp_path: Path, ca: CertAuthority) -> None:
    device = ca.issue("simulator", client=True)
    with TlsMosquitto(tmp_path / "mosquitto", ca, require_certificate=True) as broker:
        tls = ["--cafile", str(ca.cert), "--certfile", str(device.cert), "--keyfile"]
        result = iot_edge(
            "simulate", "--mqtt-url", broker.url, *tls, str(device.key),
            "--types", "conveyor", "--rate", "20", "--max-messages", "5",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "mqtt_url = mqtts://localhost" in result.stdout
        assert "acked=5" in result.stdout.splitlines()[-1]
        # A key that is not the certificate's: one line naming the option, exit 2.
        bad = iot_edge(
            "simulate", "--mqtt-url", broker.url, *tls, str(ca.issue("other", client=True).key),
        )  # fmt: skip
        assert bad.returncode == 2
        assert bad.stderr.strip().splitlines() == [
            f"simulate: error: invalid setting --keyfile: {ca.directory / 'other.key'} does not "
            "match the certificate in --certfile"
        ]


def iot_edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_gateway.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
