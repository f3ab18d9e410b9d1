"""The gateway buffer-runway alert: a warning while a gateway reports that its buffer will be
full sooner than `warn_below_s` (HUB_BUFFER_RUNWAY_WARN_S). Pure: the engine keeps the state.

The runway comes in the gateway's edge metrics (`buffer_runway_s`, null while its buffer is not
growing), so the hub knows it only while it hears the gateway: a gateway cut off from Kafka
sends nothing, and its last runway is the one from before the cut (see the README).

The alert is keyed like `gateway_offline`: no device, the gateway's id, this rule. It clears
once the runway is back above the threshold by `CLEAR_MARGIN` or the buffer stops growing, so a
runway hovering at the threshold does not flap it.
"""

from __future__ import annotations

from typing import Final

from hub.rules._checks import fmt
from hub.rules.model import BUFFER_RUNWAY, AlertTransition, TransitionKind

CLEAR_MARGIN: Final = 0.1  # of the threshold
METRIC: Final = "buffer_runway_s"  # the edge-metrics field the value comes from


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{fmt(round(seconds))} s"
    if seconds < 7200:
        return f"{fmt(round(seconds / 60))} min"
    return f"{fmt(round(seconds / 3600, 1))} h"


def runway_low(runway_s: float | None, warn_below_s: float, *, is_open: bool) -> bool:
    """Should the alert be open after this report?"""
    if runway_s is None or warn_below_s <= 0:
        return False
    limit = warn_below_s + warn_below_s * CLEAR_MARGIN if is_open else warn_below_s
    return runway_s < limit


def runway_transition(
    gateway_id: str,
    runway_s: float | None,
    warn_below_s: float,
    *,
    is_open: bool,
    ts: int,
) -> AlertTransition | None:
    """The transition this report makes (raised or cleared), or None."""
    low = runway_low(runway_s, warn_below_s, is_open=is_open)
    if low == is_open:
        return None
    kind: TransitionKind = "raised" if low else "cleared"
    if low:
        message = (
            f"buffer of gateway {gateway_id} full in {_duration(runway_s or 0.0)} at its "
            f"current rates (warning below {_duration(warn_below_s)})"
        )
    elif runway_s is None:
        message = f"buffer of gateway {gateway_id} no longer growing"
    else:
        message = f"buffer of gateway {gateway_id} full in {_duration(runway_s)}: runway again"
    return AlertTransition(
        kind=kind,
        device_id=None,
        gateway_id=gateway_id,
        rule=BUFFER_RUNWAY,
        severity="warning",
        metric=METRIC,
        value=runway_s,
        message=message,
        ts=ts,
    )
