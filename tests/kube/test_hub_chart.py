"""The Helm chart helm/iot-hub on a real single-node Kubernetes (scripts/kube), from the images
`make images` built, against Kafka, PostgreSQL and Redis running in the cluster: install with an
examples/ values file, the migration hook first, every pod Ready through its probes, readings from
Kafka into PostgreSQL, then upgrade, rollback and a deleted worker pod with readings streaming
in, none lost or repeated, and an uninstall that leaves only what the chart documents.

The tests of this module share one release in a namespace of their own and run in order."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psutil
import pytest

from tests.deploy.tools import ROOT
from tests.kube import cluster
from tests.kube.cluster import (
    DATABASE_URL,
    DEPS_NS,
    KAFKA_BOOTSTRAP,
    KUBE,
    REDIS_URL,
    Helm,
    PodWatch,
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
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.kube, pytest.mark.timeout(3600)]

CHART = ROOT / "helm" / "iot-hub"
EXAMPLE = CHART / "examples" / "bitnami.yaml"
RELEASE = "iot"
FULLNAME = "iot-iot-hub"
SECRET = "iot-hub-connections"  # the Secret examples/bitnami.yaml names (existingSecret)
WORKER = "app.kubernetes.io/component=worker"
WEB = "app.kubernetes.io/component=web"
RELEASE_PODS = f"app.kubernetes.io/instance={RELEASE}"
COMPONENT = "app.kubernetes.io/component"
ROLL_TIMEOUT_S = 300


@dataclass
class Hub:
    namespace: str
    helm: Helm
    producer: Producer
    readings: Readings
    # A consumer group of its own: other releases on the same Kafka (a developer's) would share
    # the partitions otherwise.
    group: str

    def helm_run(self, *args: str) -> str:
        return self.helm.run(*args, "-n", self.namespace)

    def install_args(self, wait: bool = True) -> list[str]:
        """The example's values, with this machine's image, the deps' Kafka and the group."""
        return [
            "-f", str(EXAMPLE),
            "--set", "image.repository=iot-monitoring/hub",
            "--set", "image.tag=local",
            "--set", "image.pullPolicy=Never",
            "--set", f"kafka.bootstrap={KAFKA_BOOTSTRAP}",
            "--set", f"config.HUB_CONSUMER_GROUP={self.group}",
        ] + (["--wait", "--timeout", "5m"] if wait else [])  # fmt: skip

    def wait_stored(self) -> list[cluster.Key]:
        """Every produced reading in PostgreSQL (a timeout shows the worker's recent log)."""
        return wait_stored(self.readings, context=lambda: logs(self.namespace, WORKER)[-6000:])

    def pod_uids(self, selector: str) -> list[str]:
        return [p["metadata"]["uid"] for p in running_pods(self.namespace, selector)]

    def config_value(self, key: str) -> str:
        configmap = kubectl_json("-n", self.namespace, "get", "configmap", FULLNAME)
        value: str = configmap["data"][key]
        return value


@pytest.fixture(scope="module")
def hub(kube: str, kube_helm: Helm) -> Iterator[Hub]:
    """A namespace of its own with the example's Secret (made from the deps' URLs, as the
    example's comments make it) and a producer pod; the release is installed by the first
    test. Teardown: the release (if still there), then the namespace."""
    namespace = f"iot-test-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", namespace)
    try:
        kubectl(
            "-n", namespace, "create", "secret", "generic", SECRET,
            f"--from-literal=HUB_DATABASE_URL={DATABASE_URL}",
            f"--from-literal=HUB_REDIS_URL={REDIS_URL}",
            f"--from-literal=HUB_WEB_STORAGE_SECRET={uuid.uuid4().hex}{uuid.uuid4().hex}",
        )  # fmt: skip
        producer = start_producer(namespace)
        try:
            run = uuid.uuid4().hex[:6]
            yield Hub(namespace, kube_helm, producer, Readings(f"k8s-{run}-"), f"iot-hub-{run}")
        finally:
            producer.close()
    finally:
        releases = kube_helm.run("list", "-n", namespace, "-q")
        if RELEASE in releases.split():
            kube_helm.run("uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "5m")
        kubectl("delete", "namespace", namespace, "--wait=true", timeout=300)


def test_deps_run_in_the_cluster_from_the_local_images(
    kube: str, kube_images: dict[str, str]
) -> None:
    deployments = kubectl_json("-n", DEPS_NS, "get", "deployments")["items"]
    images = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in deployments
    }
    assert images == {
        "kafka": kube_images["IOT_KAFKA_IMAGE"],
        "postgres": kube_images["IOT_POSTGRES_IMAGE"],
        "redis": kube_images["IOT_REDIS_IMAGE"],
    }
    for pod in kubectl_json("-n", DEPS_NS, "get", "pods")["items"]:
        assert ready(pod), pod["metadata"]["name"]


def test_helm_install_runs_the_migration_before_the_pods(hub: Hub) -> None:
    with PodWatch(hub.namespace) as watch:
        # The watch lists the producer pod first: from then on, it sees every change.
        wait_until(lambda: watch.lines, 60, "the pod watch listing the producer", 0.1)
        hub.helm_run("install", RELEASE, str(CHART), *hub.install_args())
    status = json.loads(hub.helm_run("status", RELEASE, "-o", "json"))
    assert (status["version"], status["info"]["status"]) == (1, "deployed")

    # One watch stream is in the API server's order: the migration pod Succeeded before the
    # first worker or web pod existed.
    lines = [line for line in watch.lines if len(line) == 3]
    succeeded = [i for i, (_, p, c) in enumerate(lines) if (c, p) == ("migrate", "Succeeded")]
    first_app = [i for i, (*_, comp) in enumerate(lines) if comp in ("worker", "web")]
    assert succeeded, f"no migration pod succeeded: {lines}"
    assert first_app, f"no worker or web pod: {lines}"
    assert succeeded[0] < first_app[0], lines
    # hook-succeeded: the job is deleted once it has run (docs/deploy-hub.md, section 6).
    assert not kubectl("-n", hub.namespace, "get", "jobs", "-o", "name").strip()
    # ...and the schema is there.
    assert cluster.sql("SELECT to_regclass('public.readings') IS NOT NULL") == [["t"]]


def test_every_pod_becomes_ready_through_its_probes(hub: Hub) -> None:
    release_pods = running_pods(hub.namespace, RELEASE_PODS)
    components = Counter(p["metadata"]["labels"][COMPONENT] for p in release_pods)
    assert components == {"worker": 1, "web": 1}
    for pod in release_pods:
        name = pod["metadata"]["name"]
        assert ready(pod), name
        (container,) = pod["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"], (name, status)
        assert status["restartCount"] == 0, (name, status)
        # What the kubelet's probes ask, asked from inside the pod: both answer 200.
        port = container["ports"][0]["containerPort"]
        for path in ("/healthz", "/readyz"):
            code = kubectl(
                "-n", hub.namespace, "exec", name, "--", "python", "-c",
                "import sys, urllib.request as u; "
                f"print(u.urlopen('http://127.0.0.1:{port}{path}', timeout=10).status)",
            ).strip()  # fmt: skip
            assert code == "200", (name, path, code)


def test_the_cluster_listens_on_loopback_and_its_bridge_only(hub: Hub) -> None:
    """Every listening socket of what scripts/kube started (the release running) is on
    127.0.0.1 or the node's address on the cluster's own bridge; the pods listen in their own
    network namespaces, on that bridge's subnet."""
    (node,) = kubectl_json("get", "nodes")["items"]
    node_ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    allowed = {"127.0.0.1", "::1", node_ip}
    listening = {}
    for component, pid in cluster.cluster_pids().items():
        for conn in psutil.Process(pid).net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN or conn.type == socket.SOCK_DGRAM:
                listening[f"{component} {conn.laddr.ip}:{conn.laddr.port}"] = conn.laddr.ip
    assert {"kube-apiserver", "kubelet", "etcd"} <= {k.split()[0] for k in listening}, listening
    assert {k for k, ip in listening.items() if ip not in allowed} == set()


def test_readings_produced_to_kafka_land_in_postgresql(hub: Hub) -> None:
    hub.readings.produce(hub.producer, 60)
    rows = hub.wait_stored()
    assert sorted(rows) == sorted(hub.readings.produced)


def _assert_exactly_once(hub: Hub) -> None:
    rows = hub.wait_stored()
    repeated = [key for key, n in Counter(rows).items() if n > 1]
    assert not repeated, repeated[:10]
    assert set(rows) == set(hub.readings.produced)
    assert len(rows) == len(hub.readings.produced)


def test_helm_upgrade_with_a_changed_value_rolls_the_pods_without_losing_readings(
    hub: Hub,
) -> None:
    assert hub.config_value("HUB_LOG_LEVEL") == "INFO"
    workers, webs = hub.pod_uids(WORKER), hub.pod_uids(WEB)
    with Stream(hub.producer, hub.readings) as stream:
        stream.wait_for_more(20)
        hub.helm_run(
            "upgrade", RELEASE, str(CHART), *hub.install_args(),
            "--set", "config.HUB_LOG_LEVEL=DEBUG",
        )  # fmt: skip
        wait_rolled(hub.namespace, WORKER, workers, ROLL_TIMEOUT_S)
        wait_rolled(hub.namespace, WEB, webs, ROLL_TIMEOUT_S)
        stream.wait_for_more(40)
    assert hub.config_value("HUB_LOG_LEVEL") == "DEBUG"
    assert json.loads(hub.helm_run("status", RELEASE, "-o", "json"))["version"] == 2
    _assert_exactly_once(hub)


def test_helm_rollback_restores_the_previous_values(hub: Hub) -> None:
    workers, webs = hub.pod_uids(WORKER), hub.pod_uids(WEB)
    with Stream(hub.producer, hub.readings) as stream:
        stream.wait_for_more(20)
        hub.helm_run("rollback", RELEASE, "1", "--wait", "--timeout", "5m")
        wait_rolled(hub.namespace, WORKER, workers, ROLL_TIMEOUT_S)
        wait_rolled(hub.namespace, WEB, webs, ROLL_TIMEOUT_S)
        stream.wait_for_more(40)
    assert hub.config_value("HUB_LOG_LEVEL") == "INFO"
    history = json.loads(hub.helm_run("history", RELEASE, "-o", "json"))
    assert [(h["revision"], h["status"]) for h in history][-1] == (3, "deployed")
    assert history[-1]["description"] == "Rollback to 1"
    _assert_exactly_once(hub)


@pytest.mark.parametrize("how", ["deleted", "force-deleted"])
def test_a_worker_pod_deleted_mid_stream_loses_and_duplicates_nothing(hub: Hub, how: str) -> None:
    (worker,) = running_pods(hub.namespace, WORKER)
    name = worker["metadata"]["name"]
    force = ["--grace-period=0", "--force"] if how == "force-deleted" else []
    # The old worker's log to its end (kubectl logs -f ends with the container).
    follow = subprocess.Popen(
        [str(KUBE), "kubectl", "-n", hub.namespace, "logs", "-f", name],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with Stream(hub.producer, hub.readings) as stream:
            stream.wait_for_more(20)
            kubectl("-n", hub.namespace, "delete", "pod", name, "--wait=false", *force)
            stream.wait_for_more(10)
            wait_rolled(hub.namespace, WORKER, [worker["metadata"]["uid"]], ROLL_TIMEOUT_S)
            stream.wait_for_more(40)
        log, _ = follow.communicate(timeout=120)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.communicate(timeout=30)
    if how == "deleted":  # SIGTERM: the batch in flight finished and committed, a clean exit
        assert "event=worker_stopped exit_code=0" in log, log[-3000:]
    _assert_exactly_once(hub)


KINDS = (
    "all,secrets,configmaps,persistentvolumeclaims,jobs,serviceaccounts,roles,rolebindings,"
    "ingresses,poddisruptionbudgets,horizontalpodautoscalers,networkpolicies"
)
# What Kubernetes puts in every namespace, and the Secret the example has you create.
NAMESPACE_DEFAULTS = {"ConfigMap/kube-root-ca.crt", "ServiceAccount/default"}


def _left_after_uninstall(namespace: str) -> set[str]:
    """What is in the namespace once the uninstalled release's pods are gone (the test's
    producer pod aside)."""

    def left() -> set[str] | None:
        items = kubectl_json("-n", namespace, "get", KINDS)["items"]
        items = [i for i in items if "iot-test/role" not in i["metadata"].get("labels", {})]
        found = {f"{i['kind']}/{i['metadata']['name']}" for i in items}
        # The release's pods go after the uninstall returns (the worker finishes its batch).
        return found if not any(n.startswith("Pod/") for n in found) else None

    found: set[str] = wait_until(left, ROLL_TIMEOUT_S, "the release's pods gone", 1.0)
    return found


def test_helm_uninstall_leaves_only_what_the_chart_documents(hub: Hub) -> None:
    hub.helm_run("uninstall", RELEASE, "--wait", "--timeout", "5m")
    # No Helm release records (sh.helm.release.v1.*), no hook job; the example's Secret stays.
    assert _left_after_uninstall(hub.namespace) == NAMESPACE_DEFAULTS | {f"Secret/{SECRET}"}
    # The data stays in PostgreSQL, which the chart does not own.
    assert set(cluster.stored(hub.readings.prefix)) == set(hub.readings.produced)


def test_the_charts_own_secret_keeps_its_generated_storage_secret_and_goes_with_it(
    hub: Hub,
) -> None:
    """Without existingSecret: the URLs as values, the migration's hook Secret deleted after
    it ran, HUB_WEB_STORAGE_SECRET generated once (`lookup` needs a cluster: helm template
    makes a new one each time) and kept by an upgrade; uninstall removes it all."""
    release, secret = "own", "own-iot-hub"
    own = [
        "--set", f"database.url={DATABASE_URL}",
        "--set", f"redis.url={REDIS_URL}",
        "--set", "existingSecret=",
        "--set", f"config.HUB_CONSUMER_GROUP={hub.group}-own",
    ]  # fmt: skip
    hub.helm_run("install", release, str(CHART), *hub.install_args(), *own)
    try:
        data = kubectl_json("-n", hub.namespace, "get", "secret", secret)["data"]
        assert set(data) == {"HUB_DATABASE_URL", "HUB_REDIS_URL", "HUB_WEB_STORAGE_SECRET"}
        generated = base64.b64decode(data["HUB_WEB_STORAGE_SECRET"]).decode()
        assert len(generated) >= 32
        secrets = kubectl("-n", hub.namespace, "get", "secrets", "-o", "name").split()
        assert "secret/own-iot-hub-migrate" not in secrets  # the hook's, deleted once it ran
        selector = f"app.kubernetes.io/instance={release}"
        old = [p["metadata"]["uid"] for p in running_pods(hub.namespace, selector)]
        hub.helm_run(
            "upgrade", release, str(CHART), *hub.install_args(), *own,
            "--set", "config.HUB_LOG_LEVEL=DEBUG",
        )  # fmt: skip
        wait_rolled(hub.namespace, selector, old, ROLL_TIMEOUT_S)
        data = kubectl_json("-n", hub.namespace, "get", "secret", secret)["data"]
        assert base64.b64decode(data["HUB_WEB_STORAGE_SECRET"]).decode() == generated
    finally:
        hub.helm_run("uninstall", release, "--wait", "--timeout", "5m")
    assert _left_after_uninstall(hub.namespace) == NAMESPACE_DEFAULTS | {f"Secret/{SECRET}"}


def _late_service(namespace: str, name: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"name": "tcp", "port": port, "protocol": "TCP"}]},
    }


def _endpoints(namespace: str, service: str, ip: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-1",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [{"name": "tcp", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
    }


def _apply(*objects: dict[str, Any]) -> None:
    items = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    kubectl("apply", "-f", "-", input=json.dumps(items))


def test_the_worker_and_the_web_app_wait_for_kafka_and_postgresql_that_come_late(
    hub: Hub,
) -> None:
    """As after a restart of the cluster, where the hub's pods start before Kafka's and
    PostgreSQL's: a second release whose Kafka and PostgreSQL are Services without endpoints
    yet (no hooks: the schema is there). Both pods wait, then get Ready once the endpoints
    appear, without a restart (the worker used to exit at once without Kafka)."""
    ns, release = hub.namespace, "late"
    svc = f"{ns}.svc.cluster.local"
    _apply(_late_service(ns, "late-kafka", 9092), _late_service(ns, "late-postgres", 5432))
    kubectl(
        "-n", ns, "create", "secret", "generic", "late-connections",
        f"--from-literal=HUB_DATABASE_URL=postgresql://iot:iot@late-postgres.{svc}:5432/iot",
        f"--from-literal=HUB_REDIS_URL={REDIS_URL}",
        f"--from-literal=HUB_WEB_STORAGE_SECRET={uuid.uuid4().hex}{uuid.uuid4().hex}",
    )  # fmt: skip
    selector = f"app.kubernetes.io/instance={release}"
    try:
        hub.helm_run(
            "install", release, str(CHART), "--no-hooks", *hub.install_args(wait=False),
            "--set", f"kafka.bootstrap=late-kafka.{svc}:9092",
            "--set", "existingSecret=late-connections",
            "--set", f"config.HUB_CONSUMER_GROUP={hub.group}-late",
        )  # fmt: skip

        def waiting(component: str, event: str) -> bool:
            return f"event={event}_failed" in logs(ns, f"{selector},{COMPONENT}={component}")

        wait_until(lambda: waiting("worker", "kafka_connect"), 120, "the worker waiting", 1.0)
        wait_until(lambda: waiting("web", "db_connect"), 120, "the web app waiting", 1.0)
        ips = {
            app: kubectl_json("-n", DEPS_NS, "get", "pods", "-l", f"app={app}")["items"][0][
                "status"
            ]["podIP"]
            for app in ("kafka", "postgres")
        }
        _apply(
            _endpoints(ns, "late-kafka", ips["kafka"], 9092),
            _endpoints(ns, "late-postgres", ips["postgres"], 5432),
        )

        def all_ready() -> list[dict[str, Any]] | None:
            found = running_pods(ns, selector)
            return found if len(found) == 2 and all(ready(p) for p in found) else None

        for pod in wait_until(all_ready, ROLL_TIMEOUT_S, "the late release's pods Ready", 1.0):
            (status,) = pod["status"]["containerStatuses"]
            assert status["restartCount"] == 0, (pod["metadata"]["name"], status)
    finally:
        hub.helm_run("uninstall", release, "--wait", "--timeout", "5m")
        kubectl("-n", ns, "delete", "service", "late-kafka", "late-postgres")
        kubectl("-n", ns, "delete", "secret", "late-connections")
