"""The chart's options: worker autoscaling, ingress with TLS and several web replicas, the
ServiceMonitor, an existing Secret, alert rules, and NOTES.txt."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.deploy.chart import CHART, MINIMAL_VALUES, Helm, Manifest, container, env_of, find
from tests.deploy.value_sets import (
    EXISTING_SECRET,
    EXISTING_SECRET_VALUES,
    INGRESS_HOST,
    INGRESS_TLS,
    NOTIFICATIONS,
    RULES,
    THREE_WORKERS_HPA,
)

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1800)]

WORKER = "iot-iot-hub-worker"
WEB = "iot-iot-hub-web"


def test_worker_autoscaling_owns_the_replica_count(helm: Helm) -> None:
    docs = helm.template(THREE_WORKERS_HPA)
    hpa = find(docs, "HorizontalPodAutoscaler", WORKER)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": WORKER,
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 6)
    assert "replicas" not in find(docs, "Deployment", WORKER)["spec"]
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] > 0
    # One consumer group for every replica: the Faust app id.
    assert find(docs, "ConfigMap", "iot-iot-hub")["data"]["HUB_CONSUMER_GROUP"] == "iot-hub"


def test_no_autoscaler_by_default(helm: Helm) -> None:
    docs = helm.template(MINIMAL_VALUES)
    assert not [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert not [d for d in docs if d["kind"] in ("Ingress", "ServiceMonitor")]
    assert find(docs, "Deployment", WORKER)["spec"]["replicas"] == 1


def test_ingress_with_tls_routes_to_the_web_service(helm: Helm) -> None:
    docs = helm.template(INGRESS_TLS)
    ingress = find(docs, "Ingress", WEB)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "iot-hub-tls", "hosts": [INGRESS_HOST]}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == INGRESS_HOST
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": WEB, "port": {"name": "http"}}
    service_ports = {p["name"] for p in find(docs, "Service", WEB)["spec"]["ports"]}
    assert "http" in service_ports
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/affinity"] == "cookie"


def test_several_web_replicas_share_nicegui_storage_in_redis(helm: Helm) -> None:
    docs = helm.template(INGRESS_TLS)
    web = find(docs, "Deployment", WEB)
    assert web["spec"]["replicas"] == 2
    env = env_of(web)
    # The same Redis as the hub's, from the same Secret key.
    assert env["NICEGUI_REDIS_URL"] == env["HUB_REDIS_URL"]
    assert env["NICEGUI_REDIS_URL"]["secretKeyRef"]["key"] == "HUB_REDIS_URL"
    assert find(docs, "Service", WEB)["spec"]["sessionAffinity"] == "ClientIP"


def test_service_monitor_scrapes_the_web_metrics(helm: Helm) -> None:
    docs = helm.template(INGRESS_TLS)
    monitor = find(docs, "ServiceMonitor", WEB)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    service = find(docs, "Service", WEB)
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["iot"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


def secret_refs(docs: list[Manifest]) -> dict[tuple[str, str], dict[str, str]]:
    """(workload, variable) -> secretKeyRef, for every variable that comes from a Secret."""
    refs = {}
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            for name, value in env_of(doc).items():
                if isinstance(value, dict) and "secretKeyRef" in value:
                    refs[(doc["metadata"]["name"], name)] = value["secretKeyRef"]
    return refs


def test_existing_secret_is_used_everywhere_and_no_secret_is_rendered(helm: Helm) -> None:
    docs = helm.template(EXISTING_SECRET_VALUES)
    assert not [d for d in docs if d["kind"] == "Secret"]
    refs = secret_refs(docs)
    keys = EXISTING_SECRET_VALUES["existingSecretKeys"]
    assert refs[(WORKER, "HUB_DATABASE_URL")] == {
        "name": EXISTING_SECRET,
        "key": keys["databaseUrl"],
    }
    assert refs[("iot-iot-hub-migrate", "HUB_DATABASE_URL")]["name"] == EXISTING_SECRET
    assert refs[(WEB, "HUB_WEB_STORAGE_SECRET")] == {
        "name": EXISTING_SECRET,
        "key": keys["webStorageSecret"],
    }
    assert refs[(WEB, "NICEGUI_REDIS_URL")]["key"] == keys["redisUrl"]
    assert {ref["name"] for ref in refs.values()} == {EXISTING_SECRET}


def test_alert_rules_are_mounted_for_the_worker_and_the_web(helm: Helm) -> None:
    docs = helm.template(RULES)
    rules = find(docs, "ConfigMap", "iot-iot-hub-rules")
    assert rules["data"]["rules.yaml"].strip() == RULES["rules"].strip()
    # The web checks the dashboard's rule edits over the same file the workers load.
    for name in (WORKER, WEB):
        deployment = find(docs, "Deployment", name)
        rules_file = env_of(deployment)["HUB_RULES_FILE"]
        mount = next(m for m in container(deployment)["volumeMounts"] if m["name"] == "rules")
        assert rules_file == f"{mount['mountPath']}/rules.yaml"
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        volume = next(v for v in volumes if v["name"] == "rules")
        assert volume["configMap"]["name"] == "iot-iot-hub-rules"
    without = helm.template(MINIMAL_VALUES)
    assert "HUB_RULES_FILE" not in env_of(find(without, "Deployment", WEB))


def test_notifications_are_mounted_for_the_worker(helm: Helm) -> None:
    docs = helm.template(NOTIFICATIONS)
    config = find(docs, "ConfigMap", "iot-iot-hub-notifications")
    assert config["data"]["notifications.yaml"].strip() == NOTIFICATIONS["notifications"].strip()
    worker = find(docs, "Deployment", WORKER)
    path = env_of(worker)["HUB_NOTIFICATIONS_FILE"]
    mount = next(m for m in container(worker)["volumeMounts"] if m["name"] == "notifications")
    assert path == f"{mount['mountPath']}/notifications.yaml"
    assert "HUB_NOTIFICATIONS_FILE" not in env_of(find(docs, "Deployment", WEB))
    plain = helm.template(MINIMAL_VALUES)
    assert "HUB_NOTIFICATIONS_FILE" not in env_of(find(plain, "Deployment", WORKER))


def test_notes_tell_how_to_reach_the_app_and_add_the_first_user(helm: Helm, tmp_path: Path) -> None:
    # `helm template` does not print NOTES.txt: render its text through a copy of the chart.
    chart = tmp_path / "iot-hub"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "_notes_preview.tpl").write_text(
        '{{- define "notes-preview" -}}\n' + notes + "\n{{- end -}}\n"
    )
    (chart / "templates" / "notes-preview.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n"
        '  notes: {{ include "notes-preview" . | quote }}\n'
    )
    values = helm.values_file(MINIMAL_VALUES, "notes")
    result = helm.run(
        "template",
        "iot",
        str(chart),
        "-n",
        "iot",
        "-f",
        str(values),
        "--show-only",
        "templates/notes-preview.yaml",
    )
    assert result.returncode == 0, result.stderr
    text = yaml.safe_load(result.stdout)["data"]["notes"]
    assert "kubectl -n iot port-forward svc/iot-iot-hub-web 8080:80" in text
    assert "kubectl -n iot exec -it deploy/iot-iot-hub-web -- iot-hub user add admin" in text
    assert "EDGE_KAFKA_BOOTSTRAP=kafka.data.svc:9092" in text
