"""What the chart promises for a plain install: labels, probes, security context, the wiring of
settings and secrets, and the migration hook."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from tests.deploy.chart import (
    CHART,
    MINIMAL_VALUES,
    Helm,
    Manifest,
    container,
    env_of,
    find,
)

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1800)]

WORKER = "iot-iot-hub-worker"
WEB = "iot-iot-hub-web"
CONFIG = "iot-iot-hub"
MIGRATE = "iot-iot-hub-migrate"
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "helm.sh/chart",
)


@pytest.fixture(scope="module")
def docs(helm: Helm) -> list[Manifest]:
    return helm.template(MINIMAL_VALUES)


def pod_specs(docs: list[Manifest]) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]
        for d in docs
        if d["kind"] in ("Deployment", "Job")
    }


def secret_data(secret: Manifest) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_every_object_has_the_standard_labels(docs: list[Manifest]) -> None:
    for doc in docs:
        labels = doc["metadata"]["labels"]
        for label in STANDARD_LABELS:
            assert labels.get(label), f"{doc['kind']}/{doc['metadata']['name']} lacks {label}"
        assert labels["app.kubernetes.io/instance"] == "iot"
        assert labels["helm.sh/chart"] == "iot-hub-0.1.0"


def test_selectors_pick_their_own_pods(docs: list[Manifest]) -> None:
    for name, component in ((WORKER, "worker"), (WEB, "web")):
        deployment = find(docs, "Deployment", name)
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector["app.kubernetes.io/component"] == component
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items()
        pdb = find(docs, "PodDisruptionBudget", name)
        assert pdb["spec"]["selector"]["matchLabels"] == selector
    service = find(docs, "Service", WEB)
    web_pods = find(docs, "Deployment", WEB)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= web_pods.items()
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "web"


def test_worker_probes_on_the_faust_web_port(docs: list[Manifest]) -> None:
    worker = container(find(docs, "Deployment", WORKER))
    assert worker["args"] == ["worker"]
    (port,) = worker["ports"]
    config = find(docs, "ConfigMap", CONFIG)["data"]
    assert port["containerPort"] == int(config["HUB_WORKER_WEB_PORT"]) == 6066
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert worker["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_web_probes_and_service_on_the_http_port(docs: list[Manifest]) -> None:
    web = container(find(docs, "Deployment", WEB))
    assert web["args"] == ["web"]
    (port,) = web["ports"]
    config = find(docs, "ConfigMap", CONFIG)["data"]
    assert port["containerPort"] == int(config["HUB_HTTP_PORT"]) == 8080
    assert config["HUB_WEB_HOST"] == "0.0.0.0"
    assert web["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert web["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    service_port = find(docs, "Service", WEB)["spec"]["ports"][0]
    assert service_port["targetPort"] == port["name"] == "http"


def test_every_pod_runs_unprivileged_on_a_read_only_root(docs: list[Manifest]) -> None:
    specs = pod_specs(docs)
    assert set(specs) == {WORKER, WEB, MIGRATE}
    for name, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] != 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        (box,) = spec["containers"]
        assert box["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert box["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert box["securityContext"]["capabilities"]["drop"] == ["ALL"], name
        # The only writable place: /tmp on an emptyDir (Faust's datadir, NiceGUI's storage).
        (tmp,) = [v for v in spec["volumes"] if v["name"] == "tmp"]
        assert "emptyDir" in tmp, name
        assert {"name": "tmp", "mountPath": "/tmp"} in box["volumeMounts"], name
        assert box["resources"]["requests"]["memory"], name
        assert box["resources"]["limits"]["memory"], name


def test_settings_come_from_the_configmap_and_urls_from_the_secret(docs: list[Manifest]) -> None:
    config = find(docs, "ConfigMap", CONFIG)["data"]
    assert config["HUB_KAFKA_BOOTSTRAP"] == MINIMAL_VALUES["kafka"]["bootstrap"]
    assert config["HUB_TOPIC_PARTITIONS"] == "6"
    assert config["HUB_CONSUMER_GROUP"] == "iot-hub"
    assert not any(key.endswith("_URL") or "SECRET" in key for key in config)
    secret = secret_data(find(docs, "Secret", CONFIG))
    assert secret["HUB_DATABASE_URL"] == MINIMAL_VALUES["database"]["url"]
    assert secret["HUB_REDIS_URL"] == MINIMAL_VALUES["redis"]["url"]
    for name in (WORKER, WEB):
        box = container(find(docs, "Deployment", name))
        assert box["envFrom"] == [{"configMapRef": {"name": CONFIG}}]
        env = env_of(find(docs, "Deployment", name))
        for var in ("HUB_DATABASE_URL", "HUB_REDIS_URL"):
            assert env[var] == {"secretKeyRef": {"name": CONFIG, "key": var}}, (name, var)
    web_env = env_of(find(docs, "Deployment", WEB))
    assert web_env["HUB_WEB_STORAGE_SECRET"] == {
        "secretKeyRef": {"name": CONFIG, "key": "HUB_WEB_STORAGE_SECRET"}
    }
    assert web_env["NICEGUI_STORAGE_PATH"].startswith("/tmp/")
    # One replica: NiceGUI's own file storage will do; no Redis storage, no affinity.
    assert "NICEGUI_REDIS_URL" not in web_env
    assert "sessionAffinity" not in find(docs, "Service", WEB)["spec"]
    assert "HUB_WEB_STORAGE_SECRET" not in env_of(find(docs, "Deployment", WORKER))


def test_storage_secret_is_generated_not_shipped(helm: Helm) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["web"]["storageSecret"] == ""
    assert values["database"]["url"] == values["redis"]["url"] == ""
    first, second = (
        secret_data(find(helm.template(MINIMAL_VALUES), "Secret", CONFIG))["HUB_WEB_STORAGE_SECRET"]
        for _ in range(2)
    )
    assert len(first) >= 32
    assert first != second  # random per install (kept across upgrades through lookup)


def test_migration_runs_as_a_pre_install_and_pre_upgrade_hook(docs: list[Manifest]) -> None:
    job = find(docs, "Job", MIGRATE)
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    box = container(job)
    assert box["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1
    # Hooks run before the release's Secret exists: the job reads a hook Secret of its own,
    # created first (lower weight) and holding the same URL.
    url_ref = env_of(job)["HUB_DATABASE_URL"]["secretKeyRef"]
    assert url_ref["name"] == MIGRATE
    hook_secret = find(docs, "Secret", MIGRATE)
    hook_annotations = hook_secret["metadata"]["annotations"]
    assert hook_annotations["helm.sh/hook"] == annotations["helm.sh/hook"]
    assert int(hook_annotations["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    assert secret_data(hook_secret)[url_ref["key"]] == MINIMAL_VALUES["database"]["url"]


def test_the_release_secret_and_config_are_not_hooks(docs: list[Manifest]) -> None:
    for kind in ("Secret", "ConfigMap"):
        annotations = find(docs, kind, CONFIG)["metadata"].get("annotations") or {}
        assert "helm.sh/hook" not in annotations


def test_pods_roll_when_settings_change(helm: Helm, docs: list[Manifest]) -> None:
    def checksums(rendered: list[Manifest]) -> dict[str, str]:
        annotations = find(rendered, "Deployment", WORKER)["spec"]["template"]["metadata"][
            "annotations"
        ]
        return {k: v for k, v in annotations.items() if k.startswith("checksum/")}

    debug = helm.template({**MINIMAL_VALUES, "config": {"HUB_LOG_LEVEL": "DEBUG"}})
    assert checksums(debug)["checksum/config"] != checksums(docs)["checksum/config"]
    assert checksums(debug)["checksum/secret"] == checksums(docs)["checksum/secret"]
