"""Values files the chart must render, each on top of the chart's defaults."""

from __future__ import annotations

from typing import Any

from tests.deploy.chart import MINIMAL_VALUES, merged

INGRESS_HOST = "iot.example.com"
EXISTING_SECRET = "iot-hub-connections"

ONE_REPLICA = MINIMAL_VALUES

THREE_WORKERS_HPA = merged(
    MINIMAL_VALUES,
    {
        "worker": {
            "replicas": 3,
            "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 6},
        }
    },
)

INGRESS_TLS = merged(
    MINIMAL_VALUES,
    {
        "web": {
            "replicas": 2,
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "annotations": {"nginx.ingress.kubernetes.io/affinity": "cookie"},
                "hosts": [{"host": INGRESS_HOST, "paths": [{"path": "/", "pathType": "Prefix"}]}],
                "tls": [{"secretName": "iot-hub-tls", "hosts": [INGRESS_HOST]}],
            },
        },
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    },
)

EXISTING_SECRET_VALUES: dict[str, Any] = {
    "kafka": MINIMAL_VALUES["kafka"],
    "existingSecret": EXISTING_SECRET,
    "existingSecretKeys": {
        "databaseUrl": "database-url",
        "redisUrl": "redis-url",
        "webStorageSecret": "web-storage-secret",
    },
    "web": {"replicas": 2},
}

RULES = merged(
    MINIMAL_VALUES,
    {
        "rules": "types:\n"
        "  cnc_spindle:\n"
        "    rules:\n"
        "      spindle_temp_c.threshold: {crit_high: 90}\n"
    },
)

VALUE_SETS: dict[str, dict[str, Any]] = {
    "one-replica": ONE_REPLICA,
    "three-workers-hpa": THREE_WORKERS_HPA,
    "ingress-tls": INGRESS_TLS,
    "existing-secret": EXISTING_SECRET_VALUES,
    "rules": RULES,
}
