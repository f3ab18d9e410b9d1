"""Shelving an alert: the pure checks of what an operator asked for (no I/O, no clock).

An alert is shelved while ``shelved_until > now`` (`hub.storage.model.AlertRow.shelved`): it
still changes state, but notifies nobody, and ends by itself when the time passes.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_REASON_CHARS", "check_reason", "shelf_end", "shelved_text"]

MAX_REASON_CHARS: Final = 1000
_HOUR_MS: Final = 3_600_000


def shelf_end(now_ms: int, *, hours: float | None, until: int | None, max_hours: float) -> int:
    """When a shelf asked for at ``now_ms`` ends (epoch ms): ``hours`` from now or ``until``,
    exactly one of them, in the future and at most ``max_hours`` ahead. ValueError names the
    field at fault."""
    if (hours is None) == (until is None):
        raise ValueError("give exactly one of hours or until")
    if hours is not None:
        if not hours > 0:
            raise ValueError(f"hours must be more than 0, got {hours}")
        if hours > max_hours:
            raise ValueError(f"hours must be at most {max_hours:g} (HUB_SHELVE_MAX_HOURS)")
        return now_ms + round(hours * _HOUR_MS)
    assert until is not None
    if until <= now_ms:
        raise ValueError("until must be in the future")
    if until - now_ms > max_hours * _HOUR_MS:
        raise ValueError(
            f"until must be at most {max_hours:g} hours from now (HUB_SHELVE_MAX_HOURS)"
        )
    return until


def check_reason(reason: str | None, field: str = "reason") -> str:
    """The reason, stripped: required, at most MAX_REASON_CHARS, no NUL."""
    reason = (reason or "").strip()
    if not reason:
        raise ValueError(f"{field} is required: say why the alert is shelved")
    if len(reason) > MAX_REASON_CHARS:
        raise ValueError(f"{field} must be at most {MAX_REASON_CHARS} characters")
    if "\x00" in reason:
        raise ValueError(f"{field} must not contain NUL characters")
    return reason


def shelved_text(by: str | None, until_iso: str, reason: str | None) -> str:
    """The human reason a shelved alert notifies nobody."""
    return f"shelved by {by or '?'} until {until_iso}: {reason or ''}".rstrip(": ")
