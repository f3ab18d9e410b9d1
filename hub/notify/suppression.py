"""What the dispatcher asks just before it sends: is this alert's notification suppressed (a
shelved alert, a maintenance window)? The answer is recorded as the attempt's reason."""

from __future__ import annotations

from typing import Protocol


class NotificationSuppression(Protocol):
    async def suppressed_because(
        self, alert_id: int, device_id: str | None, gateway_id: str | None, at_ms: int
    ) -> str | None:
        """A short reason when the notification must not be sent, else None."""
        ...


class NoSuppression:
    """Nothing is suppressed: the default until shelving and maintenance windows exist."""

    async def suppressed_because(
        self, alert_id: int, device_id: str | None, gateway_id: str | None, at_ms: int
    ) -> str | None:
        return None
