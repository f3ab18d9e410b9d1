"""Each connector's health: connected, last error, values/s and counters by reason. Written by the
connector's task on the gateway's event loop, read by the status snapshot. Pure."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from edge_gateway.stats import RateMeter

# Reasons counted (docs/connectors.md, "Troubleshooting").
REASONS = (
    "connect_failed",  # could not (re)connect to the endpoint
    "timeout",  # a request got no answer in time
    "connection_lost",  # the connection dropped while in use
    "modbus_exception",  # the device answered with a Modbus exception response
    "not_finite",  # a register decoded to NaN or infinity: value skipped
    "bad_node",  # an OPC UA node that does not exist or cannot be monitored
    "bad_value",  # an OPC UA value that is not a number or boolean: skipped
    "bad_status",  # an OPC UA value whose status code is not Good: skipped
    "intake_full",  # the gateway's intake pushed back: reading dropped
    "unexpected",  # a bug: logged with its traceback, the connector starts over
)


@dataclass(slots=True)
class ConnectorHealth:
    name: str
    kind: str
    endpoint: str
    connected: bool = False
    last_error: str | None = None
    values_total: int = 0
    readings_total: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    _rate: RateMeter = field(default_factory=RateMeter)

    def count(self, reason: str, error: str | None = None, n: int = 1) -> None:
        self.errors[reason] += n
        if error is not None:
            self.last_error = f"{reason}: {error}"[:300]

    def values_rate(self, now_s: float) -> float:
        return self._rate.rate(now_s, self.values_total)

    def snapshot(self, now_s: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "endpoint": self.endpoint,
            "connected": self.connected,
            "last_error": self.last_error,
            "values_total": self.values_total,
            "readings_total": self.readings_total,
            "values_rate": round(self.values_rate(now_s), 2),
            "errors": dict(sorted(self.errors.items())),
        }
