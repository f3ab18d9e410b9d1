"""The Helm chart with Kafka secured as in production, on the real cluster of scripts/kube: the
examples/strimzi.yaml values (SASL_SSL, SCRAM-SHA-512, the CA from a Secret) against a Kafka
broker in the test's namespace with a SASL_SSL listener, SCRAM users created on the broker and
a mutual-TLS listener, with certificates the test makes. A wrong password gives one clear line
per attempt and no Ready worker; the fixed Secret and a restart bring the readings in; then an
upgrade to mutual TLS (securityProtocol SSL, the client certificate from a Secret) keeps them
coming. The passwords never appear in the pods' logs.

The cluster enforces NetworkPolicies (kube-router's firewall): the worker reaches this broker
through the egress policy's Kafka peer and port, moved to this namespace below.

The tests of this module share one release in a namespace of their own and run in order."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.tools import ROOT
from tests.kube.cluster import (
    DATABASE_URL,
    REDIS_URL,
    Helm,
    Producer,
    Readings,
    Stream,
    kubectl,
    kubectl_json,
    logs,
    ready,
    running_pods,
    start_producer,
    wait_rolled,
    wait_stored,
)
from tests.support.certs import CertAuthority
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.kube, pytest.mark.timeout(3600)]

CHART = ROOT / "helm" / "iot-hub"
EXAMPLE = CHART / "examples" / "strimzi.yaml"
RELEASE = "iot"
WORKER = "app.kubernetes.io/component=worker"
RELEASE_PODS = f"app.kubernetes.io/instance={RELEASE}"
# The Secrets examples/strimzi.yaml names, made as its comments make them.
CONNECTIONS, KAFKA_USER, KAFKA_CA = "iot-hub-connections", "iot-hub-kafka", "iot-kafka-ca"
KAFKA_CLIENT_TLS = "iot-hub-kafka-tls"
HUB_USER = "iot-hub"  # the example's kafka.sasl.username
BROKER = "kafka-secure"
# Strimzi's ports: 9093 for TLS, 9094 for the second listener; both in the chart's default
# egress policy. PLAINTEXT on 9092 is the test producer's way in; LOCAL is for the admin tool
# inside the broker's pod (a pod cannot reach itself through its own Service here).
PORTS = {"PLAINTEXT": 9092, "MTLS": 9093, "SASL_SSL": 9094, "CONTROLLER": 9097, "LOCAL": 9098}
ROLL_TIMEOUT_S = 300


def _broker_manifest(namespace: str, image: str) -> list[dict[str, Any]]:
    """A single-node KRaft broker of the project's Kafka image (KAFKA_* variables become
    server.properties), its PEM key store and trust store from the Secret `kafka-broker-tls`."""
    host = f"{BROKER}.{namespace}.svc.cluster.local"
    listeners = ",".join(f"{name}://:{port}" for name, port in PORTS.items())
    advertised = ",".join(
        f"{name}://{'localhost' if name == 'LOCAL' else host}:{port}"
        for name, port in PORTS.items()
        if name != "CONTROLLER"
    )
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    env = {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "CLUSTER_ID": "Xk2GmE6uT5qbQvS0t9m1rA",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@localhost:{PORTS['CONTROLLER']}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENERS": listeners,
        "KAFKA_ADVERTISED_LISTENERS": advertised,
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": (
            "PLAINTEXT:PLAINTEXT,LOCAL:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL"
        ),
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_SASL_ENABLED_MECHANISMS": "SCRAM-SHA-512",
        # listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config (`__` is `_`, `___` is `-`)
        "KAFKA_LISTENER_NAME_SASL__SSL_SCRAM___SHA___512_SASL_JAAS_CONFIG": scram,
        "KAFKA_LISTENER_NAME_MTLS_SSL_CLIENT_AUTH": "required",
        "KAFKA_SSL_KEYSTORE_TYPE": "PEM",
        "KAFKA_SSL_KEYSTORE_LOCATION": "/etc/kafka/tls/server.pem",
        "KAFKA_SSL_TRUSTSTORE_TYPE": "PEM",
        "KAFKA_SSL_TRUSTSTORE_LOCATION": "/etc/kafka/tls/ca.crt",
        "KAFKA_LOG_DIRS": "/var/lib/kafka/data",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_HEAP_OPTS": "-Xms256m -Xmx512m",
    }
    labels = {"app": BROKER}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": BROKER, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "enableServiceLinks": False,
                    "containers": [
                        {
                            "name": "kafka",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "env": [{"name": k, "value": v} for k, v in env.items()],
                            "ports": [{"containerPort": p} for p in PORTS.values()],
                            "readinessProbe": {
                                "tcpSocket": {"port": PORTS["SASL_SSL"]},
                                "periodSeconds": 3,
                            },
                            "volumeMounts": [
                                {"name": "tls", "mountPath": "/etc/kafka/tls", "readOnly": True},
                                {"name": "data", "mountPath": "/var/lib/kafka/data"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "tls", "secret": {"secretName": "kafka-broker-tls"}},
                        {"name": "data", "emptyDir": {}},
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": BROKER, "namespace": namespace},
        "spec": {
            "selector": labels,
            "ports": [
                {"name": name.lower().replace("_", "-"), "port": port}
                for name, port in PORTS.items()
                if name not in ("CONTROLLER", "LOCAL")
            ],
        },
    }
    return [deployment, service]


def _secret(namespace: str, name: str, files: dict[str, Path | str]) -> None:
    args = [
        f"--from-file={key}={value}" if isinstance(value, Path) else f"--from-literal={key}={value}"
        for key, value in files.items()
    ]
    kubectl("-n", namespace, "create", "secret", "generic", name, *args)


def _add_scram_user(namespace: str, user: str, password: str) -> bool:
    """The user's SCRAM-SHA-512 credential, set on the broker through its admin API (Kafka's
    own kafka-configs.sh, in the broker's pod); False while the broker does not answer yet."""
    try:
        kubectl(
            "-n", namespace, "exec", f"deploy/{BROKER}", "--", "kafka-configs.sh",
            "--bootstrap-server", f"localhost:{PORTS['LOCAL']}", "--alter",
            "--add-config", f"SCRAM-SHA-512=[password={password}]",
            "--entity-type", "users", "--entity-name", user,
        )  # fmt: skip
    except AssertionError:
        return False
    return True


@dataclass
class SecureHub:
    namespace: str
    helm: Helm
    ca: CertAuthority
    password: str
    producer: Producer
    readings: Readings

    @property
    def host(self) -> str:
        return f"{BROKER}.{self.namespace}.svc.cluster.local"

    def helm_run(self, *args: str) -> str:
        return self.helm.run(*args, "-n", self.namespace)

    def values(self, protocol: str = "SASL_SSL") -> list[str]:
        """examples/strimzi.yaml, with this machine's image, the broker of this namespace, one
        worker (two cores), and the egress policy's Kafka peer moved to this namespace."""
        kafka_peer = [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": self.namespace}}}]  # fmt: skip
        ports = [{"port": PORTS[protocol if protocol == "SASL_SSL" else "MTLS"]}]
        return [
            "-f", str(EXAMPLE),
            "--set", "image.repository=iot-monitoring/hub",
            "--set", "image.tag=local",
            "--set", "image.pullPolicy=Never",
            "--set", "worker.replicas=1",
            "--set", f"config.HUB_CONSUMER_GROUP=iot-hub-{uuid.uuid4().hex[:6]}",
            "--set", "config.HUB_TOPIC_PARTITIONS=6",
            "--set-json", f"networkPolicy.egress.kafka.to={json.dumps(kafka_peer)}",
            "--set-json", f"networkPolicy.egress.kafka.ports={json.dumps(ports)}",
            "--set", f"kafka.bootstrap={self.host}:{ports[0]['port']}",
        ]  # fmt: skip

    def worker_log(self) -> str:
        return logs(self.namespace, WORKER)

    def wait_stored(self) -> None:
        rows = wait_stored(self.readings, context=lambda: self.worker_log()[-6000:])
        assert set(rows) == set(self.readings.produced)


@pytest.fixture(scope="module")
def secure(
    kube: str,
    kube_helm: Helm,
    kube_images: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SecureHub]:
    """The namespace, the broker with the hub's SCRAM user, the example's Secrets (the Kafka
    password wrong at first) and a producer on the PLAINTEXT listener. Teardown: the namespace."""
    namespace = f"iot-secure-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", namespace)
    try:
        ca = CertAuthority(tmp_path_factory.mktemp("kube-tls"))
        host = f"{BROKER}.{namespace}.svc.cluster.local"
        server = ca.issue(BROKER, (host, f"{BROKER}.{namespace}.svc"))
        _secret(namespace, "kafka-broker-tls", {"server.pem": server.pem, "ca.crt": ca.cert})
        kubectl(
            "apply", "-f", "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": _broker_manifest(
                namespace, kube_images["IOT_KAFKA_IMAGE"])}),
        )  # fmt: skip
        kubectl(
            "-n", namespace, "wait", "--for=condition=Available", f"deployment/{BROKER}",
            "--timeout=300s", timeout=320,
        )  # fmt: skip
        password = secrets.token_urlsafe(18)
        wait_until(
            lambda: _add_scram_user(namespace, HUB_USER, password), 180, "the SCRAM user", 2.0
        )
        _secret(
            namespace,
            CONNECTIONS,
            {
                "HUB_DATABASE_URL": DATABASE_URL,
                "HUB_REDIS_URL": REDIS_URL,
                "HUB_WEB_STORAGE_SECRET": secrets.token_urlsafe(48),
            },
        )
        _secret(namespace, KAFKA_USER, {"password": "not-" + password})
        _secret(namespace, KAFKA_CA, {"ca.crt": ca.cert})
        producer = start_producer(namespace, f"{host}:{PORTS['PLAINTEXT']}")
        try:
            yield SecureHub(
                namespace,
                kube_helm,
                ca,
                password,
                producer,
                Readings(f"k8s-tls-{uuid.uuid4().hex[:6]}-"),
            )
        finally:
            producer.close()
    finally:
        kubectl("delete", "namespace", namespace, "--wait=true", timeout=300)


def test_a_wrong_kafka_password_gives_a_clear_line_and_no_ready_worker(
    secure: SecureHub,
) -> None:
    secure.helm_run("install", RELEASE, str(CHART), *secure.values())

    def refused() -> str | None:
        lines = [
            line
            for line in secure.worker_log().splitlines()
            if "event=kafka_connect_failed" in line
        ]
        return lines[0] if lines else None

    line = wait_until(refused, ROLL_TIMEOUT_S, "the worker's kafka_connect_failed line", 1.0)
    assert "authentication_failed" in line, line
    assert "HUB_KAFKA_SASL_PASSWORD" in line, line
    assert not any(ready(p) for p in running_pods(secure.namespace, WORKER))
    assert secure.password not in secure.worker_log()


def test_the_fixed_secret_and_a_restart_bring_readings_in_over_sasl_ssl(
    secure: SecureHub,
) -> None:
    ns = secure.namespace
    kubectl("-n", ns, "delete", "secret", KAFKA_USER)
    _secret(ns, KAFKA_USER, {"password": secure.password})
    old = [p["metadata"]["uid"] for p in running_pods(ns, WORKER)]
    # Environment variables from a Secret are read when the container starts.
    kubectl("-n", ns, "rollout", "restart", "deployment", "-l", WORKER)
    wait_rolled(ns, WORKER, old, ROLL_TIMEOUT_S)
    wait_until(
        lambda: all(ready(p) for p in running_pods(ns, RELEASE_PODS)),
        ROLL_TIMEOUT_S,
        "the worker and the web app Ready",
        1.0,
    )
    secure.readings.produce(secure.producer, 40)
    secure.wait_stored()
    for selector in (WORKER, "app.kubernetes.io/component=web"):
        assert secure.password not in logs(ns, selector)


def test_an_upgrade_to_mutual_tls_keeps_the_readings_coming(secure: SecureHub) -> None:
    ns = secure.namespace
    client = secure.ca.issue("iot-hub-client", client=True)
    _secret(ns, KAFKA_CLIENT_TLS, {"user.crt": client.cert, "user.key": client.key})
    old = [p["metadata"]["uid"] for p in running_pods(ns, WORKER)]
    with Stream(secure.producer, secure.readings) as stream:
        stream.wait_for_more(20)
        secure.helm_run(
            "upgrade", RELEASE, str(CHART), *secure.values("SSL"),
            "--set", "kafka.securityProtocol=SSL",
            "--set", "kafka.sasl.existingSecret=",
            "--set", f"kafka.tls.clientSecret={KAFKA_CLIENT_TLS}",
            "--set", "kafka.tls.certKey=user.crt",
            "--set", "kafka.tls.keyKey=user.key",
            "--wait", "--timeout", "5m",
        )  # fmt: skip
        wait_rolled(ns, WORKER, old, ROLL_TIMEOUT_S)
        stream.wait_for_more(40)
    secure.wait_stored()
    (worker,) = running_pods(ns, WORKER)
    env = {e["name"]: e.get("value") for e in worker["spec"]["containers"][0]["env"]}
    assert env["HUB_KAFKA_SECURITY_PROTOCOL"] == "SSL"
    assert env["HUB_KAFKA_SSL_CERTFILE"] == "/etc/iot-hub/tls/kafka/tls.crt"
    configmap = kubectl_json("-n", ns, "get", "configmap", f"{RELEASE}-iot-hub")
    assert configmap["data"]["HUB_KAFKA_BOOTSTRAP"] == f"{secure.host}:{PORTS['MTLS']}"
