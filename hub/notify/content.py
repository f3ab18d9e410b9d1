"""What one notification says, whatever the channel: what (rule, metric, message), where (site,
gateway, device), how bad, since when, the value (the rule's message states it against its
threshold) and links to the device page and the alert. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal
from urllib.parse import quote

from hub.storage.model import AlertRow

__all__ = ["EVENTS", "Event", "Notice", "notice_for", "utc_text"]

Event = Literal["firing", "resolved", "repeat", "escalation", "test"]
EVENTS: Final[tuple[Event, ...]] = ("firing", "resolved", "repeat", "escalation", "test")


def utc_text(ms: int | None) -> str | None:
    """RFC 3339 in UTC with milliseconds, e.g. 2026-01-02T03:04:05.678Z."""
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification: one transition (or repeat, escalation) of one alert, for one channel."""

    idempotency_key: str
    event: Event
    alert_id: int
    rule: str
    severity: str
    state: str
    acknowledged: bool
    metric: str | None
    value: float | None
    message: str
    device_id: str | None
    gateway_id: str | None
    site: str | None
    device_type: str | None
    raised_at: int
    cleared_at: int | None
    occurrences: int
    device_url: str | None
    alert_url: str | None

    @property
    def resolved(self) -> bool:
        return self.event == "resolved"

    @property
    def where(self) -> str:
        parts = [
            f"site {self.site}" if self.site else None,
            f"gateway {self.gateway_id}" if self.gateway_id else None,
            f"device {self.device_id}" if self.device_id else None,
        ]
        return ", ".join(p for p in parts if p) or "-"

    @property
    def title(self) -> str:
        head = {
            "firing": "FIRING",
            "resolved": "RESOLVED",
            "repeat": "STILL FIRING",
            "escalation": "ESCALATED",
            "test": "TEST",
        }[self.event]
        subject = self.device_id or self.gateway_id or "-"
        return f"[{head}] {self.severity} {self.rule} on {subject}"

    def facts(self) -> list[tuple[str, str]]:
        """(label, text) pairs, in reading order, for every channel's body."""
        out = [
            ("What", self.message),
            ("Rule", self.rule + (f" ({self.metric})" if self.metric else "")),
            ("Where", self.where),
            ("Severity", self.severity),
            ("Since", utc_text(self.raised_at) or "-"),
        ]
        if self.value is not None:
            out.append(("Value", f"{self.value:g}"))
        if self.cleared_at is not None:
            out.append(("Cleared", utc_text(self.cleared_at) or "-"))
        out.append(("Acknowledged", "yes" if self.acknowledged else "no"))
        return out

    def to_json(self) -> dict[str, Any]:
        """The notification as the `iot-v1` webhook body lists it."""
        return {
            "idempotency_key": self.idempotency_key,
            "event": self.event,
            "alert": {
                "id": self.alert_id,
                "rule": self.rule,
                "severity": self.severity,
                "state": self.state,
                "acknowledged": self.acknowledged,
                "metric": self.metric,
                "value": self.value,
                "message": self.message,
                "device_id": self.device_id,
                "gateway_id": self.gateway_id,
                "site": self.site,
                "device_type": self.device_type,
                "raised_at": utc_text(self.raised_at),
                "cleared_at": utc_text(self.cleared_at),
                "occurrences": self.occurrences,
            },
            "links": {"device": self.device_url, "alert": self.alert_url},
        }


def _links(row: AlertRow, public_url: str | None) -> tuple[str | None, str | None]:
    if not public_url:
        return None, None
    base = public_url.rstrip("/")
    if row.device_id is None:
        return None, f"{base}/alerts?status=all#alert-{row.id}"
    device = quote(row.device_id, safe="")
    return f"{base}/device/{device}", f"{base}/alerts?status=all&device_id={device}#alert-{row.id}"


def notice_for(
    row: AlertRow,
    *,
    event: Event,
    idempotency_key: str,
    site: str | None,
    device_type: str | None,
    public_url: str | None,
) -> Notice:
    device_url, alert_url = _links(row, public_url)
    return Notice(
        idempotency_key=idempotency_key,
        event=event,
        alert_id=row.id,
        rule=row.rule,
        severity=row.severity,
        state=row.state,
        acknowledged=row.acknowledged,
        metric=row.metric,
        value=row.value,
        message=row.message,
        device_id=row.device_id,
        gateway_id=row.gateway_id,
        site=site,
        device_type=device_type,
        raised_at=row.raised_at,
        cleared_at=row.cleared_at,
        occurrences=row.occurrences,
        device_url=device_url,
        alert_url=alert_url,
    )
