"""A second real Kafka broker, configured as a production one is across a network: a SASL_SSL
listener (SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN users) and a mutual-TLS listener, with
certificates the test makes (tests/support/certs.py). Started by scripts/services in a state
directory and on ports of its own (its PLAINTEXT listener on loopback is the test's own way in,
as an operator's internal listener is), and stopped by the same script."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.certs import CertAuthority
from tests.support.process import free_port
from tests.support.services import ROOT, run_services

USER = "edge-site-1"
HUB_USER = "iot-hub"
PLAIN_USER = "plain-user"


@dataclass(frozen=True)
class SecureKafka:
    plaintext: str  # host:port, no security: for the tests' own producers and consumers
    sasl_ssl: str
    mtls: str
    ca: CertAuthority
    passwords: dict[str, str]  # user -> password (SCRAM users, and the PLAIN user)

    def client_cert(self, name: str, *, expired: bool = False) -> tuple[Path, Path]:
        issued = self.ca.issue(name, client=True, expired=expired)
        return issued.cert, issued.key


def _properties(
    directory: Path, ports: dict[str, int], server_pem: Path, ca_cert: Path, plain_password: str
) -> Path:
    host = "127.0.0.1"
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    plain = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'user_{PLAIN_USER}="{plain_password}";'
    )
    lines = [
        f"listeners=PLAINTEXT://{host}:{ports['plaintext']},"
        f"CONTROLLER://{host}:{ports['controller']},"
        f"SASL_SSL://{host}:{ports['sasl_ssl']},MTLS://{host}:{ports['mtls']}",
        f"advertised.listeners=PLAINTEXT://{host}:{ports['plaintext']},"
        f"SASL_SSL://{host}:{ports['sasl_ssl']},MTLS://{host}:{ports['mtls']}",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
        "SASL_SSL:SASL_SSL,MTLS:SSL",
        "sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
        f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram}",
        f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={scram}",
        f"listener.name.sasl_ssl.plain.sasl.jaas.config={plain}",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={server_pem}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={ca_cert}",
        "listener.name.mtls.ssl.client.auth=required",
    ]
    path = directory / "secure.properties"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def secure_kafka(directory: Path) -> Iterator[SecureKafka]:
    """Start the broker (the main Kafka's jars; formatted with the SCRAM users), yield it, stop
    it."""
    ca = CertAuthority(directory / "tls")
    server = ca.issue("kafka-broker", ("localhost", "127.0.0.1"))
    passwords = {user: secrets.token_urlsafe(16) for user in (USER, HUB_USER, PLAIN_USER)}
    ports = {name: free_port() for name in ("plaintext", "controller", "sasl_ssl", "mtls")}
    state = Path(os.environ.get("IOT_STATE_DIR") or ROOT / ".local").resolve()
    scram = [
        f"--add-scram SCRAM-SHA-{bits}=[name={user},password={passwords[user]}]"
        for user in (USER, HUB_USER)
        for bits in (256, 512)
    ]
    env = {
        "IOT_STATE_DIR": str(directory / "state"),
        "KAFKA_LIBS_DIR": str(state / "kafka" / "libs"),
        "KAFKA_PORT": str(ports["plaintext"]),
        "KAFKA_CONTROLLER_PORT": str(ports["controller"]),
        "KAFKA_HEAP_OPTS": "-Xms128m -Xmx512m",
        "KAFKA_EXTRA_PROPERTIES_FILE": str(
            _properties(directory, ports, server.pem, ca.cert, passwords[PLAIN_USER])
        ),
        "KAFKA_FORMAT_ARGS": " ".join(scram),
    }
    run_services("install", "kafka")  # the jars, fetched once, shared with the main broker
    run_services("start", "kafka", env=env)
    try:
        yield SecureKafka(
            plaintext=f"127.0.0.1:{ports['plaintext']}",
            sasl_ssl=f"127.0.0.1:{ports['sasl_ssl']}",
            mtls=f"127.0.0.1:{ports['mtls']}",
            ca=ca,
            passwords=passwords,
        )
    finally:
        run_services("stop", "kafka", env=env)
