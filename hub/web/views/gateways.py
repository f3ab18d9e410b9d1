"""What a gateway card says about its buffer runway (`buffer_runway_s` of its edge metrics)."""

from __future__ import annotations

from hub.web.views.numbers import format_duration


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
