"""The chart's NetworkPolicies, enforced: the cluster of scripts/kube runs kube-router's firewall
(iptables and ipsets on the pod bridge), so these tests open real connections from pods and see
them let through or refused.

The release is examples/bitnami.yaml against the deps in namespace iot-deps, in a namespace of
its own, with `networkPolicy.workerIngressFrom` narrowed to pods labelled iot-test/role=monitor
(the default lets every pod of the namespace in). Beside it: a pod without the hub's labels
(`stranger`), the `monitor` pod, and a busybox `listener` on a port that no egress rule of the
chart names. With the policies on:
* the stranger reaches the web pods' HTTP port (directly and through the Service) but not the
  worker's port, which the monitor reaches;
* the worker reaches Kafka, PostgreSQL and Redis in iot-deps, and readings land, but not the
  listener; the web pods do not reach Kafka (not theirs); the stranger, under no policy, does
  reach the listener (so the listener is up).
Then, as the control, the release upgraded with networkPolicy.enabled=false: the same refused
connections succeed, so the first tests fail where nothing enforces the policies.

The tests of this module share one release and run in order."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.tools import ROOT
from tests.kube.cluster import (
    DATABASE_URL,
    DEPS_NS,
    KAFKA_BOOTSTRAP,
    KUBE,
    REDIS_URL,
    SVC,
    Helm,
    Producer,
    Readings,
    kubectl,
    kubectl_json,
    logs,
    ready,
    running_pods,
    start_producer,
    wait_stored,
)
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.kube, pytest.mark.timeout(3600)]

CHART = ROOT / "helm" / "iot-hub"
EXAMPLE = CHART / "examples" / "bitnami.yaml"
RELEASE = "iot"
FULLNAME = "iot-iot-hub"
SECRET = "iot-hub-connections"  # the Secret examples/bitnami.yaml names (existingSecret)
WORKER = "app.kubernetes.io/component=worker"
WEB = "app.kubernetes.io/component=web"
HUB_IMAGE = "iot-monitoring/hub:local"
BUSYBOX_IMAGE = "iot-monitoring/busybox:local"
LISTENER_PORT = 7777  # in no egress rule of the chart
KAFKA = (f"kafka.{DEPS_NS}.{SVC}", 9092)
POSTGRES = (f"postgres.{DEPS_NS}.{SVC}", 5432)
REDIS = (f"redis.{DEPS_NS}.{SVC}", 6379)
# How long kube-router may take to apply a change of pods or policies (it syncs on each event).
SYNC_S = 60

# Runs with `kubectl exec` in a pod of the hub image: one TCP connection attempt; prints
# "connected" or the exception's class (ConnectionRefusedError: kube-router's REJECT;
# TimeoutError: a DROP).
CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
except OSError as exc:
    print(type(exc).__name__)
else:
    print("connected")
"""
BLOCKED = ("ConnectionRefusedError", "TimeoutError")
IDLE = "import signal, sys; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); signal.pause()"


def _client_pod(namespace: str, name: str) -> dict[str, Any]:
    """An idle pod of the hub image (python for CONNECT), labelled iot-test/role=NAME only."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"iot-test/role": name}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": name,
                    "image": HUB_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", IDLE],
                }
            ],
        },
    }


def _listener_pod(namespace: str) -> dict[str, Any]:
    """busybox httpd on LISTENER_PORT: any TCP connection to it is accepted."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "listener",
            "namespace": namespace,
            "labels": {"iot-test/role": "listener"},
        },
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "listener",
                    "image": BUSYBOX_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["httpd", "-f", "-p", str(LISTENER_PORT), "-h", "/tmp"],
                    "ports": [{"containerPort": LISTENER_PORT}],
                    "readinessProbe": {"tcpSocket": {"port": LISTENER_PORT}, "periodSeconds": 1},
                }
            ],
        },
    }


@dataclass
class Release:
    namespace: str
    helm: Helm
    producer: Producer
    readings: Readings
    group: str
    values: Path

    def helm_run(self, *args: str) -> str:
        return self.helm.run(*args, "-n", self.namespace)

    def install_args(self) -> list[str]:
        return [
            "-f", str(EXAMPLE),
            "-f", str(self.values),
            "--set", "image.repository=iot-monitoring/hub",
            "--set", "image.tag=local",
            "--set", "image.pullPolicy=Never",
            "--set", f"kafka.bootstrap={KAFKA_BOOTSTRAP}",
            "--set", f"config.HUB_CONSUMER_GROUP={self.group}",
            "--wait", "--timeout", "5m",
        ]  # fmt: skip

    def pod(self, selector: str) -> dict[str, Any]:
        (pod,) = running_pods(self.namespace, selector)
        return pod

    def connect(self, pod: str, host: str, port: int) -> str:
        """CONNECT from the pod: "connected" or why not."""
        result = subprocess.run(
            [str(KUBE), "kubectl", "-n", self.namespace, "exec", pod, "--",
             "python", "-c", CONNECT, host, str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"kubectl exec {pod}: {result.stderr[-2000:]}"
        return result.stdout.strip()

    def wait_connected(self, pod: str, host: str, port: int) -> None:
        outcome: list[str] = []

        def connected() -> bool:
            outcome[:] = [self.connect(pod, host, port)]
            return outcome[0] == "connected"

        try:
            wait_until(connected, SYNC_S, f"{pod} connecting to {host}:{port}", 1.0)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}: {outcome}") from None

    def wait_blocked(self, pod: str, host: str, port: int) -> None:
        outcome: list[str] = []

        def blocked() -> bool:
            outcome[:] = [self.connect(pod, host, port)]
            return outcome[0] in BLOCKED

        try:
            wait_until(blocked, SYNC_S, f"{pod} refused at {host}:{port}", 1.0)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}: last attempt {outcome}") from None


def _pod_ip(pod: dict[str, Any]) -> str:
    ip: str = pod["status"]["podIP"]
    return ip


def _port(pod: dict[str, Any]) -> int:
    (container,) = pod["spec"]["containers"]
    port: int = container["ports"][0]["containerPort"]
    return port


@pytest.fixture(scope="module")
def release(
    kube: str, kube_helm: Helm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    """The namespace, the example's Secret, the producer, stranger, monitor and listener pods,
    and the release installed. Teardown: the release, then the namespace."""
    namespace = f"iot-netpol-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", namespace)
    try:
        kubectl(
            "-n", namespace, "create", "secret", "generic", SECRET,
            f"--from-literal=HUB_DATABASE_URL={DATABASE_URL}",
            f"--from-literal=HUB_REDIS_URL={REDIS_URL}",
            f"--from-literal=HUB_WEB_STORAGE_SECRET={uuid.uuid4().hex}{uuid.uuid4().hex}",
        )  # fmt: skip
        pods = [_client_pod(namespace, "stranger"), _client_pod(namespace, "monitor")]
        items = {"apiVersion": "v1", "kind": "List", "items": [*pods, _listener_pod(namespace)]}
        kubectl("apply", "-f", "-", input=json.dumps(items))
        producer = start_producer(namespace)
        try:
            kubectl(
                "-n", namespace, "wait", "--for=condition=Ready", "--timeout=120s",
                "pod/stranger", "pod/monitor", "pod/listener",
            )  # fmt: skip
            values = tmp_path_factory.mktemp("netpol") / "values.yaml"
            monitor = {"podSelector": {"matchLabels": {"iot-test/role": "monitor"}}}
            values.write_text(json.dumps({"networkPolicy": {"workerIngressFrom": [monitor]}}))
            run = uuid.uuid4().hex[:6]
            found = Release(
                namespace, kube_helm, producer, Readings(f"netpol-{run}-"), f"iot-hub-{run}", values
            )
            found.helm_run("install", RELEASE, str(CHART), *found.install_args())
            yield found
        finally:
            producer.close()
    finally:
        if RELEASE in kube_helm.run("list", "-n", namespace, "-q").split():
            kube_helm.run("uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "5m")
        kubectl("delete", "namespace", namespace, "--wait=true", timeout=300)


def test_the_release_has_its_policies_and_ready_pods(release: Release) -> None:
    policies = kubectl_json("-n", release.namespace, "get", "networkpolicies")["items"]
    names = {p["metadata"]["name"] for p in policies}
    assert names == {f"{FULLNAME}-{c}" for c in ("web", "worker", "migrate")}
    # The kubelet's probes (from the node's address) pass the policies.
    for selector in (WORKER, WEB):
        pod = release.pod(selector)
        assert ready(pod), pod["metadata"]["name"]


def test_a_pod_without_the_hubs_labels_reaches_the_web_port_only(release: Release) -> None:
    web, worker = release.pod(WEB), release.pod(WORKER)
    release.wait_blocked("stranger", _pod_ip(worker), _port(worker))
    release.wait_connected("stranger", _pod_ip(web), _port(web))
    service = kubectl_json("-n", release.namespace, "get", "service", f"{FULLNAME}-web")
    release.wait_connected("stranger", f"{FULLNAME}-web", service["spec"]["ports"][0]["port"])
    # The peer of workerIngressFrom does reach the worker's port.
    release.wait_connected("monitor", _pod_ip(worker), _port(worker))


def test_the_worker_reaches_its_services_and_nothing_else(release: Release) -> None:
    worker = release.pod(WORKER)["metadata"]["name"]
    for host, port in (KAFKA, POSTGRES, REDIS):
        release.wait_connected(worker, host, port)
    release.readings.produce(release.producer, 30)
    rows = wait_stored(release.readings, context=lambda: logs(release.namespace, WORKER)[-6000:])
    assert set(rows) == set(release.readings.produced)

    listener = _pod_ip(release.pod("iot-test/role=listener"))
    release.wait_blocked(worker, listener, LISTENER_PORT)
    # The listener is up: a pod under no policy reaches it.
    release.wait_connected("stranger", listener, LISTENER_PORT)
    # The web app's egress has PostgreSQL and Redis, not Kafka.
    web = release.pod(WEB)["metadata"]["name"]
    release.wait_connected(web, *POSTGRES)
    release.wait_blocked(web, *KAFKA)


def test_without_the_policies_the_refused_connections_succeed(release: Release) -> None:
    """The control: what the policies refused above goes through once they are gone."""
    release.helm_run(
        "upgrade", RELEASE, str(CHART), *release.install_args(),
        "--set", "networkPolicy.enabled=false",
    )  # fmt: skip
    assert kubectl_json("-n", release.namespace, "get", "networkpolicies")["items"] == []
    worker = release.pod(WORKER)
    release.wait_connected("stranger", _pod_ip(worker), _port(worker))
    listener = _pod_ip(release.pod("iot-test/role=listener"))
    release.wait_connected(worker["metadata"]["name"], listener, LISTENER_PORT)
    release.wait_connected(release.pod(WEB)["metadata"]["name"], *KAFKA)
