"""The chart's secure links and network policies: Kafka TLS and SASL settings for the worker,
the TLS files of Kafka, PostgreSQL and Redis mounted read-only from Secrets (never a password in
a ConfigMap or a plain env value), bad security values refused with the field named, and the
NetworkPolicies that limit who reaches the hub's pods and whom they reach."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.chart import (
    CHART,
    MINIMAL_VALUES,
    SCHEMA_REFUSAL,
    Helm,
    Manifest,
    container,
    env_of,
    find,
    merged,
    refusal,
)
from tests.deploy.k8s_schema import schema_errors
from tests.deploy.value_sets import (
    KAFKA_CA_SECRET,
    KAFKA_CLIENT_SECRET,
    KAFKA_SASL_SECRET,
    NETWORK_POLICIES,
    POSTGRES_CA_SECRET,
    REDIS_TLS_SECRET,
    SECURE_SERVICES,
)

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1800)]

WORKER = "iot-iot-hub-worker"
WEB = "iot-iot-hub-web"
MIGRATE = "iot-iot-hub-migrate"
TLS_ROOT = "/etc/iot-hub/tls"
READ_ONLY_FOR_GROUP = 0o440


def pod_spec(doc: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def mounts(doc: Manifest) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container(doc)["volumeMounts"]}


def volumes(doc: Manifest) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod_spec(doc)["volumes"]}


def mounted_file(doc: Manifest, path: str) -> tuple[str, str, dict[str, Any]]:
    """(Secret, key) behind the file at `path` in the pod, and its mount: fails if no read-only
    mount of a projected Secret volume holds that file."""
    directory, _, filename = path.rpartition("/")
    mount = mounts(doc)[directory]
    volume = volumes(doc)[mount["name"]]
    for source in volume["projected"]["sources"]:
        for item in source["secret"]["items"]:
            if item["path"] == filename:
                return source["secret"]["name"], item["key"], mount
    raise AssertionError(f"{path}: no Secret item in volume {mount['name']}")


def tls_volumes(doc: Manifest) -> dict[str, dict[str, Any]]:
    return {name: v for name, v in volumes(doc).items() if name.startswith("tls-")}


@pytest.fixture(scope="module")
def secure(helm: Helm) -> list[Manifest]:
    return helm.template(SECURE_SERVICES)


def test_worker_gets_the_kafka_security_settings(secure: list[Manifest]) -> None:
    env = env_of(find(secure, "Deployment", WORKER))
    assert env["HUB_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["HUB_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    # User name and password from the Secret, by the default key names.
    assert env["HUB_KAFKA_SASL_USERNAME"] == {
        "secretKeyRef": {"name": KAFKA_SASL_SECRET, "key": "username"}
    }
    assert env["HUB_KAFKA_SASL_PASSWORD"] == {
        "secretKeyRef": {"name": KAFKA_SASL_SECRET, "key": "password"}
    }
    assert env["HUB_KAFKA_SSL_CAFILE"] == f"{TLS_ROOT}/kafka/ca.crt"
    assert env["HUB_KAFKA_SSL_CERTFILE"] == f"{TLS_ROOT}/kafka/tls.crt"
    assert env["HUB_KAFKA_SSL_KEYFILE"] == f"{TLS_ROOT}/kafka/tls.key"
    assert env["HUB_KAFKA_SSL_CHECK_HOSTNAME"] == "true"


def test_kafka_files_are_the_secrets_keys_mounted_read_only(secure: list[Manifest]) -> None:
    worker = find(secure, "Deployment", WORKER)
    env = env_of(worker)
    expected = {
        "HUB_KAFKA_SSL_CAFILE": (KAFKA_CA_SECRET, "ca.crt"),
        "HUB_KAFKA_SSL_CERTFILE": (KAFKA_CLIENT_SECRET, "user.crt"),
        "HUB_KAFKA_SSL_KEYFILE": (KAFKA_CLIENT_SECRET, "user.key"),
    }
    for variable, (secret, key) in expected.items():
        found_secret, found_key, mount = mounted_file(worker, env[variable])
        assert (found_secret, found_key) == (secret, key), variable
        assert mount["readOnly"] is True, variable
        # A whole directory, not a subPath: a renewed Secret reaches the running pod.
        assert "subPath" not in mount, variable


def test_tls_volumes_are_readable_by_the_pods_group_only(secure: list[Manifest]) -> None:
    for name in (WORKER, WEB, MIGRATE):
        doc = find(secure, "Job" if name == MIGRATE else "Deployment", name)
        group = pod_spec(doc)["securityContext"]["fsGroup"]
        assert group == pod_spec(doc)["securityContext"]["runAsGroup"] == 10001, name
        found = tls_volumes(doc)
        assert found, name
        for volume_name, volume in found.items():
            assert volume["projected"]["defaultMode"] == READ_ONLY_FOR_GROUP, volume_name
            assert all("secret" in s for s in volume["projected"]["sources"]), volume_name


def test_each_pod_mounts_the_files_of_the_services_it_talks_to(secure: list[Manifest]) -> None:
    worker = find(secure, "Deployment", WORKER)
    web = find(secure, "Deployment", WEB)
    job = find(secure, "Job", MIGRATE)
    assert set(tls_volumes(worker)) == {"tls-kafka", "tls-postgres", "tls-redis"}
    # The web app never talks to Kafka: no Kafka files, no Kafka password.
    assert set(tls_volumes(web)) == {"tls-postgres", "tls-redis"}
    assert not [name for name in env_of(web) if name.startswith("HUB_KAFKA_S")]
    # The migration job talks to PostgreSQL only.
    assert set(tls_volumes(job)) == {"tls-postgres"}
    assert not [name for name in env_of(job) if name.startswith("HUB_KAFKA_")]
    for doc in (worker, web, job):
        secret, key, mount = mounted_file(doc, f"{TLS_ROOT}/postgres/ca.crt")
        assert (secret, key, mount["readOnly"]) == (POSTGRES_CA_SECRET, "ca.crt", True)
    for doc in (worker, web):
        for filename, key in (("ca.crt", "ca.crt"), ("tls.crt", "tls.crt"), ("tls.key", "tls.key")):
            secret, found_key, mount = mounted_file(doc, f"{TLS_ROOT}/redis/{filename}")
            assert (secret, found_key, mount["readOnly"]) == (REDIS_TLS_SECRET, key, True)


def test_no_kafka_password_outside_a_secret(secure: list[Manifest]) -> None:
    for config in (d for d in secure if d["kind"] == "ConfigMap"):
        assert not [k for k in config["data"] if "PASSWORD" in k or "SASL" in k]
    for doc in secure:
        if doc["kind"] in ("Deployment", "Job"):
            value = env_of(doc).get("HUB_KAFKA_SASL_PASSWORD")
            assert value is None or set(value) == {"secretKeyRef"}, doc["metadata"]["name"]
    # existingSecret everywhere: the chart renders no Secret of its own at all.
    assert not [d for d in secure if d["kind"] == "Secret"]


def test_pods_roll_when_the_tls_sources_change(helm: Helm, secure: list[Manifest]) -> None:
    def checksum(docs: list[Manifest]) -> str:
        annotations = find(docs, "Deployment", WORKER)["spec"]["template"]["metadata"]
        value: str = annotations["annotations"]["checksum/tls"]
        return value

    other_ca = merged(SECURE_SERVICES, {"kafka": {"tls": {"existingSecret": "another-ca"}}})
    assert checksum(helm.template(other_ca)) != checksum(secure)


def test_strimzi_user_name_as_a_value(helm: Helm) -> None:
    values = merged(
        MINIMAL_VALUES,
        {
            "kafka": {
                "securityProtocol": "SASL_SSL",
                "sasl": {"existingSecret": "iot-hub", "username": "iot-hub"},
            }
        },
    )
    docs = helm.template(values)
    env = env_of(find(docs, "Deployment", WORKER))
    assert env["HUB_KAFKA_SASL_USERNAME"] == "iot-hub"
    assert env["HUB_KAFKA_SASL_PASSWORD"] == {
        "secretKeyRef": {"name": "iot-hub", "key": "password"}
    }
    # Public CA (no CA Secret): the image's trust store, so no CA file and no Kafka volume.
    assert "HUB_KAFKA_SSL_CAFILE" not in env
    assert "tls-kafka" not in volumes(find(docs, "Deployment", WORKER))
    assert schema_errors(docs) == []


def test_plaintext_by_default_with_nothing_mounted(helm: Helm) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["kafka"]["securityProtocol"] == "PLAINTEXT"
    docs = helm.template(MINIMAL_VALUES)
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            assert not tls_volumes(doc), doc["metadata"]["name"]
    env = env_of(find(docs, "Deployment", WORKER))
    assert env["HUB_KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert not [name for name in env if name.startswith(("HUB_KAFKA_SASL", "HUB_KAFKA_SSL"))]


def test_paths_in_the_docs_are_the_mounted_ones(secure: list[Manifest]) -> None:
    # A URL in the connections Secret names these files: they must be where the chart puts them.
    worker = find(secure, "Deployment", WORKER)
    documented = (CHART / "values.yaml").read_text()
    for path in (
        f"{TLS_ROOT}/postgres/ca.crt",
        f"{TLS_ROOT}/redis/ca.crt",
        f"{TLS_ROOT}/redis/tls.crt",
        f"{TLS_ROOT}/redis/tls.key",
    ):
        assert path in documented, path
        mounted_file(worker, path)


BAD_SECURITY_VALUES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "unknown-security-protocol": (
        {"kafka": {"securityProtocol": "TLS"}},
        ("at '/kafka/securityProtocol'", "value must be one of"),
    ),
    "unknown-sasl-mechanism": (
        {"kafka": {"sasl": {"mechanism": "GSSAPI"}}},
        ("at '/kafka/sasl/mechanism'", "value must be one of"),
    ),
    "password-as-a-value": (
        {"kafka": {"sasl": {"password": "hunter2"}}},
        ("at '/kafka/sasl'", "additional properties 'password'"),
    ),
    "secret-name-not-a-name": (
        {"database": {"tls": {"existingSecret": "Postgres CA"}}},
        ("at '/database/tls/existingSecret'", "does not match pattern"),
    ),
    "network-policy-port-out-of-range": (
        {"networkPolicy": {"egress": {"kafka": {"to": [], "ports": [{"port": 90920}]}}}},
        ("at '/networkPolicy/egress/kafka/ports/0/port'",),
    ),
    "client-key-without-a-name": (
        {"kafka": {"tls": {"keyKey": ""}}},
        ("at '/kafka/tls/keyKey'", "does not match pattern"),
    ),
    "network-policy-without-ports": (
        {"networkPolicy": {"egress": {"redis": {"to": [], "ports": []}}}},
        ("at '/networkPolicy/egress/redis/ports'", "minItems"),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SECURITY_VALUES))
def test_bad_security_values_are_refused_by_the_schema(helm: Helm, case: str) -> None:
    override, fragments = BAD_SECURITY_VALUES[case]
    message = refusal(helm, override)
    for fragment in (SCHEMA_REFUSAL, *fragments):
        assert fragment in message


REFUSED_SECURITY: dict[str, tuple[dict[str, Any], str]] = {
    "sasl-without-a-secret": (
        {"kafka": {"securityProtocol": "SASL_SSL"}},
        "kafka.sasl.existingSecret is required with kafka.securityProtocol=SASL_SSL",
    ),
    "sasl-plaintext-without-a-secret": (
        {"kafka": {"securityProtocol": "SASL_PLAINTEXT"}},
        "kafka.sasl.existingSecret is required with kafka.securityProtocol=SASL_PLAINTEXT",
    ),
    "sasl-secret-without-sasl": (
        {"kafka": {"securityProtocol": "SSL", "sasl": {"existingSecret": "x"}}},
        "kafka.sasl.existingSecret is set but kafka.securityProtocol=SSL does not use SASL",
    ),
    "tls-files-without-tls": (
        {"kafka": {"tls": {"existingSecret": "ca"}}},
        "kafka.securityProtocol=PLAINTEXT does not use TLS",
    ),
    "kafka-password-in-the-configmap": (
        {"config": {"HUB_KAFKA_SASL_PASSWORD": "hunter2"}},
        "config.HUB_KAFKA_SASL_PASSWORD: a secret does not belong in the ConfigMap",
    ),
    "kafka-security-in-the-configmap": (
        {"config": {"HUB_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}},
        "config.HUB_KAFKA_SECURITY_PROTOCOL: the chart sets the Kafka security settings",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED_SECURITY))
def test_security_values_that_cannot_work_are_refused(helm: Helm, case: str) -> None:
    override, message = REFUSED_SECURITY[case]
    assert message in refusal(helm, override)


# -- NetworkPolicies ------------------------------------------------------------------------------


def policies(docs: list[Manifest]) -> dict[str, Manifest]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}


def egress_ports(policy: Manifest) -> set[tuple[int, str]]:
    return {
        (p["port"], p.get("protocol", "TCP"))
        for rule in policy["spec"]["egress"]
        for p in rule["ports"]
    }


def egress_rule_for(policy: Manifest, port: int) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        r for r in policy["spec"]["egress"] if port in {p["port"] for p in r["ports"]}
    ]
    assert len(rules) == 1, f"{len(rules)} egress rules for port {port}"
    return rules[0]


DNS = {(53, "UDP"), (53, "TCP")}
KAFKA = {(9092, "TCP"), (9093, "TCP"), (9094, "TCP"), (9096, "TCP")}
POSTGRES = {(5432, "TCP")}
REDIS = {(6379, "TCP"), (6380, "TCP")}


def test_network_policies_by_default(helm: Helm) -> None:
    docs = helm.template(MINIMAL_VALUES)
    found = policies(docs)
    assert set(found) == {WEB, WORKER, MIGRATE}
    assert schema_errors(list(found.values())) == []
    for policy in found.values():
        assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    # Web: its HTTP port only, from anyone (no `from`).
    (web_rule,) = found[WEB]["spec"]["ingress"]
    assert web_rule == {"ports": [{"port": 8080, "protocol": "TCP"}]}
    # Worker: its probe port only, from the release's namespace.
    (worker_rule,) = found[WORKER]["spec"]["ingress"]
    assert worker_rule == {
        "ports": [{"port": 6066, "protocol": "TCP"}],
        "from": [{"podSelector": {}}],
    }
    # Migration job: nothing comes in.
    assert found[MIGRATE]["spec"]["ingress"] == []
    # Egress: DNS and each pod's own services, to any address by default.
    assert egress_ports(found[WORKER]) == DNS | KAFKA | POSTGRES | REDIS
    assert egress_ports(found[WEB]) == DNS | POSTGRES | REDIS
    assert egress_ports(found[MIGRATE]) == DNS | POSTGRES
    for policy in found.values():
        assert not [rule for rule in policy["spec"]["egress"] if "to" in rule]


def test_network_policies_select_the_hubs_own_pods(helm: Helm) -> None:
    docs = helm.template(MINIMAL_VALUES)
    found = policies(docs)
    for name, kind in ((WEB, "Deployment"), (WORKER, "Deployment"), (MIGRATE, "Job")):
        selector = found[name]["spec"]["podSelector"]["matchLabels"]
        pod_labels = find(docs, kind, name)["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items(), name
        others = [n for n in (WEB, WORKER, MIGRATE) if n != name]
        for other in others:
            other_kind = "Job" if other == MIGRATE else "Deployment"
            other_labels = find(docs, other_kind, other)["spec"]["template"]["metadata"]["labels"]
            assert not selector.items() <= other_labels.items(), (name, other)


def test_network_policies_follow_the_ports(helm: Helm) -> None:
    values = merged(MINIMAL_VALUES, {"web": {"port": 8000}, "worker": {"port": 7000}})
    found = policies(helm.template(values))
    assert found[WEB]["spec"]["ingress"][0]["ports"] == [{"port": 8000, "protocol": "TCP"}]
    assert found[WORKER]["spec"]["ingress"][0]["ports"] == [{"port": 7000, "protocol": "TCP"}]


def test_network_policies_with_configured_peers(helm: Helm) -> None:
    docs = helm.template(NETWORK_POLICIES)
    found = policies(docs)
    assert schema_errors(list(found.values())) == []
    settings = NETWORK_POLICIES["networkPolicy"]
    assert found[WEB]["spec"]["ingress"][0]["from"] == settings["webIngressFrom"]
    assert found[WORKER]["spec"]["ingress"][0]["from"] == settings["workerIngressFrom"]
    worker = found[WORKER]
    assert egress_ports(worker) == {
        (53, "UDP"),
        (9093, "TCP"),
        (5432, "TCP"),
        (6380, "TCP"),
        (443, "TCP"),
    }
    assert egress_rule_for(worker, 9093)["to"] == settings["egress"]["kafka"]["to"]
    assert egress_rule_for(worker, 5432)["to"] == settings["egress"]["postgres"]["to"]
    assert "to" not in egress_rule_for(worker, 6380)
    # extraEgress goes to every hub pod.
    for name in (WEB, WORKER, MIGRATE):
        assert egress_rule_for(found[name], 443) == settings["extraEgress"][0], name
    assert 9093 not in {port for port, _ in egress_ports(found[WEB])}


def test_service_side_policy_lets_only_the_hubs_pods_in(helm: Helm) -> None:
    docs = helm.template(NETWORK_POLICIES)
    policy = policies(docs)["iot-iot-hub-postgres"]
    assert policy["metadata"]["namespace"] == "data"
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "postgresql"}
    }
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 5432, "protocol": "TCP"}]
    hub_peer, exporter = rule["from"]
    assert exporter == {"podSelector": {"matchLabels": {"app": "pg-exporter"}}}
    assert hub_peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "iot"}}
    # Every hub pod of the release matches the peer, whatever its component.
    selector = hub_peer["podSelector"]["matchLabels"]
    for kind, name in (("Deployment", WEB), ("Deployment", WORKER), ("Job", MIGRATE)):
        labels = find(docs, kind, name)["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), name
    assert schema_errors([policy]) == []


def test_network_policies_vanish_when_disabled(helm: Helm) -> None:
    values = merged(NETWORK_POLICIES, {"networkPolicy": {"enabled": False}})
    assert policies(helm.template(values)) == {}


def test_no_migration_no_migration_policy(helm: Helm) -> None:
    values = merged(MINIMAL_VALUES, {"migration": {"enabled": False}})
    assert set(policies(helm.template(values))) == {WEB, WORKER}


def test_a_broken_policy_fails_the_schema_check(helm: Helm) -> None:
    # The offline validator knows NetworkPolicy: the checks above are not rubber stamps.
    policy = policies(helm.template(MINIMAL_VALUES))[WEB]
    broken = yaml.safe_load(yaml.safe_dump(policy))
    broken["spec"]["ingress"][0]["ports"][0]["prot"] = "TCP"
    assert schema_errors([broken])
