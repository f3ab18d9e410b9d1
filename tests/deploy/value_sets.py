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

NOTIFICATIONS = merged(
    MINIMAL_VALUES,
    {
        "notifications": "channels:\n"
        '  - {name: ops-webhook, type: webhook, url: "http://receiver.example/hook"}\n'
        "routes:\n"
        "  - {match: {severity: [critical]}, channels: [ops-webhook]}\n"
    },
)

# Kafka over SASL_SSL with a private CA and a client certificate (Strimzi's Secrets and keys),
# PostgreSQL and Redis over TLS with their CA files from Secrets named in the URLs.
KAFKA_SASL_SECRET = "iot-hub-kafka"
KAFKA_CA_SECRET = "iot-cluster-ca-cert"
KAFKA_CLIENT_SECRET = "iot-hub-user"
POSTGRES_CA_SECRET = "postgres-ca"
REDIS_TLS_SECRET = "redis-tls"
SECURE_SERVICES = merged(
    EXISTING_SECRET_VALUES,
    {
        "kafka": {
            "bootstrap": "iot-kafka-bootstrap.kafka.svc:9093",
            "securityProtocol": "SASL_SSL",
            "sasl": {"mechanism": "SCRAM-SHA-512", "existingSecret": KAFKA_SASL_SECRET},
            "tls": {
                "existingSecret": KAFKA_CA_SECRET,
                "clientSecret": KAFKA_CLIENT_SECRET,
                "certKey": "user.crt",
                "keyKey": "user.key",
            },
        },
        "database": {"tls": {"existingSecret": POSTGRES_CA_SECRET}},
        "redis": {
            "tls": {
                "existingSecret": REDIS_TLS_SECRET,
                "clientSecret": REDIS_TLS_SECRET,
            }
        },
    },
)

NETWORK_POLICIES = merged(
    MINIMAL_VALUES,
    {
        "networkPolicy": {
            "webIngressFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
            ],
            "workerIngressFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitor"}}}
            ],
            "egress": {
                "dns": {"to": [], "ports": [{"port": 53, "protocol": "UDP"}]},
                "kafka": {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "kafka"}
                            }
                        }
                    ],
                    "ports": [{"port": 9093, "protocol": "TCP"}],
                },
                "postgres": {
                    "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
                    "ports": [{"port": 5432, "protocol": "TCP"}],
                },
                "redis": {"to": [], "ports": [{"port": 6380, "protocol": "TCP"}]},
            },
            "extraEgress": [
                {"to": [{"ipBlock": {"cidr": "10.30.0.0/16"}}], "ports": [{"port": 443}]}
            ],
            "servicePolicies": [
                {
                    "name": "postgres",
                    "namespace": "data",
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "postgresql"}},
                    "ports": [{"port": 5432, "protocol": "TCP"}],
                    "extraFrom": [{"podSelector": {"matchLabels": {"app": "pg-exporter"}}}],
                }
            ],
        }
    },
)

VALUE_SETS: dict[str, dict[str, Any]] = {
    "one-replica": ONE_REPLICA,
    "three-workers-hpa": THREE_WORKERS_HPA,
    "ingress-tls": INGRESS_TLS,
    "existing-secret": EXISTING_SECRET_VALUES,
    "rules": RULES,
    "notifications": NOTIFICATIONS,
    "secure-services": SECURE_SERVICES,
    "network-policies": NETWORK_POLICIES,
    "no-network-policy": merged(MINIMAL_VALUES, {"networkPolicy": {"enabled": False}}),
}
