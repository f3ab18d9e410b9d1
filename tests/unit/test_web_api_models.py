"""The API's response models are built from the domain values, and say the same as they do."""

from __future__ import annotations

from dataclasses import fields

from hub.storage.model import AlertRow
from hub.storage.redis_values import GatewayHealth
from hub.web.api.models import AlertOut, GatewayOut
from hub.web.model import GatewayView
from protocol.models import ConnectorMetrics
from tests.support.readings import make_edge_metrics
from tests.unit.test_storage_model import cleared_alert

T0 = 1_764_268_800_000


def test_a_gateway_in_the_api_is_its_view_without_the_pipeline_counters() -> None:
    metrics = make_edge_metrics("gw-1", T0, site="site-1")
    view = GatewayView.of(GatewayHealth.received(metrics, T0 + 5), "offline")
    assert GatewayOut.model_validate(view).model_dump() == {
        "gateway_id": "gw-1",
        "site": "site-1",
        "state": "offline",
        "received_ts": T0 + 5,
        "buffer_depth": 0,
        "buffer_bytes": 0,
        "buffer_max_bytes": 100,
        "buffer_oldest_age_s": None,
        "buffer_runway_s": None,
        "forwarded_rate": 0.0,
        "received_rate": 0.0,
        "dropped_total": 0,
        "kafka_connected": True,
        "connectors": None,
    }


def test_a_gateway_with_connectors_lists_them() -> None:
    metrics = make_edge_metrics("gw-1", T0).model_copy(
        update={
            "connectors": [
                ConnectorMetrics(
                    name="plc",
                    kind="modbus",
                    connected=False,
                    values_rate=0.0,
                    errors={"timeout": 3},
                    last_error="timeout: press-01",
                )
            ]
        }
    )
    view = GatewayView.of(GatewayHealth.received(metrics, T0), "online")
    assert GatewayOut.model_validate(view).model_dump()["connectors"] == [
        {
            "name": "plc",
            "kind": "modbus",
            "connected": False,
            "values_rate": 0.0,
            "errors": {"timeout": 3},
            "last_error": "timeout: press-01",
        }
    ]


def test_an_alert_in_the_api_is_its_row() -> None:
    row = cleared_alert()
    assert list(AlertOut.model_fields) == [f.name for f in fields(AlertRow)]
    assert AlertOut.model_validate(row).model_dump() == row.to_json()
