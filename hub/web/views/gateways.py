"""What a gateway card says about its buffer runway (`buffer_runway_s` of its edge metrics) and
its OPC UA and Modbus connectors (`connectors`)."""

from __future__ import annotations

from collections.abc import Sequence

from hub.web.views.numbers import format_duration
from protocol.models import ConnectorMetrics


def runway_text(runway_s: float | None, *, online: bool) -> str:
    """`runway: full in 42 min`, `runway: buffer not growing`, or, for a gateway the hub no
    longer hears, the same as of its last heartbeat: it may have changed since."""
    if runway_s is None:
        text = "buffer not growing"
    elif runway_s < 1:
        text = "FULL, dropping oldest"
    else:
        text = f"full in {format_duration(runway_s)}"
    return f"runway: {text}" + ("" if online else " (at last heartbeat)")


def runway_alarming(runway_s: float | None) -> bool:
    """Shown in the warning colour: the buffer is filling up."""
    return runway_s is not None


def connector_lines(connectors: Sequence[ConnectorMetrics] | None) -> list[str]:
    """One line per connector: `opcua press-plc: up, 12.5 values/s` or, while it is down or
    has problems, the problems by reason and the last error."""
    lines = []
    for c in connectors or ():
        state = "up" if c.connected else "DOWN"
        line = f"{c.kind} {c.name}: {state}, {c.values_rate:g} values/s"
        if c.errors:
            line += " · " + ", ".join(f"{reason} {n:,}" for reason, n in sorted(c.errors.items()))
        if not c.connected and c.last_error:
            line += f" ({c.last_error})"
        lines.append(line)
    return lines


def connectors_alarming(connectors: Sequence[ConnectorMetrics] | None) -> bool:
    return any(not c.connected for c in connectors or ())
