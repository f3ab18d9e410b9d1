"""The chart lints and renders for the default values and several value sets, every object passes
the Kubernetes schemas offline, and bad values are refused with a message that says what is
wrong."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.chart import (
    CHART,
    MINIMAL_VALUES,
    SCHEMA_REFUSAL,
    Helm,
    RenderError,
    find,
    kinds,
    merged,
    refusal,
)
from tests.deploy.k8s_schema import schema_errors
from tests.deploy.value_sets import VALUE_SETS

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1800)]

EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
MISSING_CONNECTION_MESSAGES = (
    "kafka.bootstrap is required",
    "database.url is required (or existingSecret)",
    "redis.url is required (or existingSecret)",
)


def test_default_values_lint_but_do_not_render_without_connections(helm: Helm) -> None:
    # Lint renders in lint mode, where `fail` is reported rather than fatal: the chart is sound,
    # and says what a real install must add.
    output = helm.lint()
    assert "0 chart(s) failed" in output
    assert "kafka.bootstrap is required" in output
    # No default database password that would work silently: an install must name its database.
    with pytest.raises(RenderError) as refused:
        helm.template()
    assert any(message in str(refused.value) for message in MISSING_CONNECTION_MESSAGES)


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_value_set_lints(helm: Helm, name: str) -> None:
    assert "0 chart(s) failed" in helm.lint(VALUE_SETS[name])


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_value_set_renders_valid_kubernetes_objects(helm: Helm, name: str) -> None:
    docs = helm.template(VALUE_SETS[name])
    assert {"Deployment", "ConfigMap", "Service", "Job"} <= set(kinds(docs))
    assert schema_errors(docs) == []


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_values_render_valid_kubernetes_objects(helm: Helm, example: Path) -> None:
    assert "0 chart(s) failed" in helm.lint(None, example)
    docs = helm.template(None, example)
    assert kinds(docs).count("Deployment") == 2
    assert schema_errors(docs) == []


def test_examples_cover_strimzi_bitnami_and_managed_services() -> None:
    assert {p.stem for p in EXAMPLES} >= {"strimzi", "bitnami", "aws-managed"}


def test_schema_validation_catches_a_broken_object(helm: Helm) -> None:
    # The offline validator is not a rubber stamp: a wrong type and an unknown field fail.
    worker = find(helm.template(MINIMAL_VALUES), "Deployment", "iot-iot-hub-worker")
    wrong_type = copy.deepcopy(worker)
    wrong_type["spec"]["replicas"] = "three"
    typo = copy.deepcopy(worker)
    typo["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/"
    assert schema_errors([worker]) == []
    assert any("spec.replicas" in e for e in schema_errors([wrong_type]))
    assert any("'paht' was unexpected" in e for e in schema_errors([typo]))


BAD_VALUES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "replicas-not-a-number": (
        {"worker": {"replicas": "three"}},
        ("at '/worker/replicas'", "got string, want integer"),
    ),
    "typo-in-a-key": ({"workers": {"replicas": 2}}, ("additional properties 'workers'",)),
    "unknown-pull-policy": (
        {"image": {"pullPolicy": "Sometimes"}},
        ("at '/image/pullPolicy'", "value must be one of"),
    ),
    "not-a-postgres-url": (
        {"database": {"url": "mysql://iot@db:3306/iot"}},
        ("at '/database/url'", "does not match pattern"),
    ),
    "bootstrap-without-port": (
        {"kafka": {"bootstrap": "kafka.data.svc"}},
        ("at '/kafka/bootstrap'", "does not match pattern"),
    ),
    "unknown-log-level": (
        {"config": {"HUB_LOG_LEVEL": "VERBOSE"}},
        ("at '/config/HUB_LOG_LEVEL'", "value must be one of"),
    ),
    "rollup-retention-not-pairs": (
        {"config": {"HUB_ROLLUP_RETENTION_DAYS": "90 days"}},
        ("at '/config/HUB_ROLLUP_RETENTION_DAYS'", "does not match pattern"),
    ),
    "setting-without-prefix": (
        {"config": {"LOG_LEVEL": "INFO"}},
        ("at '/config'", "additional properties 'LOG_LEVEL'"),
    ),
    "ingress-path-without-type": (
        {
            "web": {
                "ingress": {
                    "enabled": True,
                    "hosts": [{"host": "iot.example.com", "paths": [{"path": "/"}]}],
                }
            }
        },
        ("at '/web/ingress/hosts/0/paths/0'", "missing property 'pathType'"),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_values_are_refused_by_the_schema(helm: Helm, case: str) -> None:
    override, fragments = BAD_VALUES[case]
    message = refusal(helm, override)
    for fragment in (SCHEMA_REFUSAL, *fragments):
        assert fragment in message


REFUSED_COMBINATIONS: dict[str, tuple[dict[str, Any], str]] = {
    "more-workers-than-partitions": (
        {"worker": {"replicas": 7}},
        "worker.replicas (7) is more than HUB_TOPIC_PARTITIONS (6)",
    ),
    "autoscaling-past-partitions": (
        {"worker": {"autoscaling": {"enabled": True, "maxReplicas": 12}}},
        "worker.autoscaling.maxReplicas (12) is more than HUB_TOPIC_PARTITIONS (6)",
    ),
    "autoscaling-min-above-max": (
        {"worker": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 4}}},
        "worker.autoscaling.minReplicas (5) is more than maxReplicas (4)",
    ),
    "url-in-the-configmap": (
        {"config": {"HUB_DATABASE_URL": "postgresql://x"}},
        "config.HUB_DATABASE_URL: a secret does not belong in the ConfigMap",
    ),
    "existing-secret-and-url": (
        {"existingSecret": "mine"},
        "existingSecret is set, and so is database.url",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED_COMBINATIONS))
def test_inconsistent_values_are_refused_by_the_chart(helm: Helm, case: str) -> None:
    override, message = REFUSED_COMBINATIONS[case]
    assert message in refusal(helm, override)


def test_more_partitions_allow_more_workers(helm: Helm) -> None:
    values = merged(
        MINIMAL_VALUES, {"config": {"HUB_TOPIC_PARTITIONS": 12}, "worker": {"replicas": 12}}
    )
    worker = find(helm.template(values), "Deployment", "iot-iot-hub-worker")
    assert worker["spec"]["replicas"] == 12
