"""Offline validation of rendered manifests against the Kubernetes OpenAPI JSON Schemas that the
`kubernetes-validate` package ships (strict: unknown fields are errors)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kubernetes_validate

# The chart's kubeVersion floor (Chart.yaml) and the newest schemas in the package.
KUBERNETES_VERSIONS = ("1.25.0", "1.37.0")
# Custom resources have no schema in the package; their shape is asserted by the tests.
CUSTOM_KINDS = frozenset({("monitoring.coreos.com/v1", "ServiceMonitor")})


def schema_errors(docs: Iterable[dict[str, Any]]) -> list[str]:
    """One line per object that fails validation for some Kubernetes version."""
    errors = []
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path) or "(top)"
                errors.append(
                    f"{doc['kind']}/{doc['metadata']['name']} on {version}: {where}: {exc.message}"
                )
    return errors
