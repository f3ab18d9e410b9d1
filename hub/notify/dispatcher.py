"""The dispatcher: one pass routes the outbox, makes the repeats and escalations due, and sends
what is due, grouped per (route, channel) into one message. Runs in each hub worker on its own
timer, apart from the alert pipeline; each group's send runs as a task of its own, so a slow or
failing receiver delays only the next messages of its own channel.

A failed send is retried with exponential backoff (2 s, 4 s, 8 s... up to `retry_max_s`) for
`GIVE_UP_MS`, then recorded as failed for good. Each attempt is recorded and logged (one
`notification_attempt` line per delivery). The suppression hook is asked just before sending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from hub.notify.config import NotificationConfig
from hub.notify.content import Event, Notice, notice_for
from hub.notify.senders import Sender, SendResult
from hub.notify.store import ClaimedDelivery, NotifyStore, Outcome
from hub.notify.suppression import NoSuppression, NotificationSuppression

__all__ = ["DispatchCounters", "Dispatcher", "backoff_ms"]

log = logging.getLogger(__name__)

BATCH: Final = 100
GIVE_UP_MS: Final = 24 * 3600_000
RETRY_BASE_MS: Final = 2000
# A lease outlasts the longest send (the slowest channel's timeout) by this margin: it expires
# only when its dispatcher died.
LEASE_MARGIN_MS: Final = 30_000


def lease_ms(config: NotificationConfig) -> int:
    longest = max((c.timeout_s for c in config.channels), default=10.0)
    return round(longest * 1000) + LEASE_MARGIN_MS


def backoff_ms(attempts: int, max_ms: int) -> int:
    """Wait before attempt ``attempts + 1``: 2 s doubled per attempt made, at most ``max_ms``."""
    return int(min(max_ms, RETRY_BASE_MS * 2 ** min(attempts - 1, 30)))


@dataclass
class DispatchCounters:
    delivered_total: int = 0
    failed_total: int = 0  # attempts that failed (retried or not)
    suppressed_total: int = 0
    given_up_total: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)  # delivered, per channel


class Dispatcher:
    def __init__(
        self,
        store: NotifyStore,
        sender: Sender,
        *,
        clock_ms: Callable[[], int],
        public_url: str | None,
        retry_max_s: float,
        suppression: NotificationSuppression | None = None,
        counters: DispatchCounters | None = None,
    ) -> None:
        self._store = store
        self._sender = sender
        self._clock_ms = clock_ms
        self._public_url = public_url
        self._retry_max_ms = round(retry_max_s * 1000)
        self._suppression = suppression or NoSuppression()
        self.counters = counters or DispatchCounters()
        self._pass = asyncio.Lock()
        self._stopped = False
        self._inflight: set[asyncio.Task[None]] = set()
        self._busy: dict[str, int] = {}  # channel -> sends in flight

    async def run_once(self, *, wait: bool = True) -> int:
        """One pass; the deliveries taken. ``wait=False`` (the worker's timer) starts the sends
        and returns: a channel that hangs holds up only its own next messages (its deliveries
        are not taken again until its send ends), never the other channels or the next pass.
        0 once `stop` was called."""
        async with self._pass:
            if self._stopped:
                return 0
            taken = await self._take_and_send()
        if wait:
            await self.drain()
        return taken

    async def drain(self) -> None:
        """Wait for every send in flight (and its outcome recorded)."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def stop(self) -> None:
        """Start no more passes, and let the sends in flight finish with their outcomes
        recorded: a worker shutting down leaves no lease behind to expire and be sent again."""
        async with self._pass:
            self._stopped = True
        await self.drain()

    async def _take_and_send(self) -> int:
        config = await self._store.load_config()
        while await self._store.route_outbox(config, self._clock_ms(), BATCH) == BATCH:
            pass
        await self._store.advance_schedules(config, self._clock_ms(), BATCH)
        claimed = await self._store.claim_due(
            self._clock_ms(), lease_ms(config), BATCH, skip_channels=set(self._busy)
        )
        groups: dict[tuple[str, str], list[ClaimedDelivery]] = {}
        for d in claimed:
            groups.setdefault((d.route, d.channel), []).append(d)
        for group in groups.values():
            self._start(config, group)
        return len(claimed)

    def _start(self, config: NotificationConfig, group: list[ClaimedDelivery]) -> None:
        channel = group[0].channel
        self._busy[channel] = self._busy.get(channel, 0) + 1
        task = asyncio.create_task(self._send_group(config, group), name=f"notify-{channel}")
        self._inflight.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._inflight.discard(t)
            self._busy[channel] -= 1
            if not self._busy[channel]:
                del self._busy[channel]
            if not t.cancelled() and t.exception() is not None:
                # The store failed to record (an outage): the lease runs out and the delivery
                # is taken again, with the same key.
                log.error(
                    "notification_send_failed",
                    extra={"channel": channel, "error": repr(t.exception())},
                )

        task.add_done_callback(done)

    async def _send_group(self, config: NotificationConfig, group: list[ClaimedDelivery]) -> None:
        first = group[0]
        channel = config.channel(first.channel)
        if channel is None:
            await self._finish(group, "failed", "channel no longer configured", final=True)
            return
        to_send: list[ClaimedDelivery] = []
        for d in group:
            reason = await self._suppression.suppressed_because(
                d.alert.id, d.alert.device_id, d.alert.gateway_id, self._clock_ms()
            )
            if reason is None:
                to_send.append(d)
            else:
                await self._finish([d], "suppressed", reason, final=True)
        if not to_send:
            return
        notices = [self._notice(d) for d in to_send]
        result = await self._sender.send(channel, notices, route=first.route)
        await self._outcome(to_send, result)

    def _notice(self, d: ClaimedDelivery) -> Notice:
        event: Event = "firing"
        for known in ("firing", "resolved", "repeat", "escalation"):
            if d.event == known:
                event = known
        return notice_for(
            d.alert,
            event=event,
            idempotency_key=d.idempotency_key,
            site=d.site,
            device_type=d.device_type,
            public_url=self._public_url,
        )

    async def _outcome(self, group: list[ClaimedDelivery], result: SendResult) -> None:
        if result.delivered:
            await self._finish(group, "delivered", result.detail, final=True)
            return
        now = self._clock_ms()
        retry: list[ClaimedDelivery] = []
        give_up: list[ClaimedDelivery] = []
        for d in group:
            (give_up if now - d.created_at >= GIVE_UP_MS else retry).append(d)
        if give_up:
            await self._finish(give_up, "failed", result.detail, final=True)
        if retry:
            wait = backoff_ms(max(d.attempts for d in retry), self._retry_max_ms)
            await self._finish(retry, "failed", result.detail, final=False, retry_at_ms=now + wait)

    async def _finish(
        self,
        deliveries: Sequence[ClaimedDelivery],
        outcome: Outcome,
        detail: str | None,
        *,
        final: bool,
        retry_at_ms: int | None = None,
    ) -> None:
        await self._store.record(
            list(deliveries),
            outcome,
            detail,
            now_ms=self._clock_ms(),
            retry_at_ms=None if final else retry_at_ms,
        )
        for d in deliveries:
            if outcome == "delivered":
                self.counters.delivered_total += 1
                self.counters.by_channel[d.channel] = self.counters.by_channel.get(d.channel, 0) + 1
            elif outcome == "suppressed":
                self.counters.suppressed_total += 1
            else:
                self.counters.failed_total += 1
                self.counters.given_up_total += final
            log.log(
                logging.WARNING if outcome == "failed" else logging.INFO,
                "notification_attempt",
                extra={
                    "alert_id": d.alert.id,
                    "device_id": d.alert.device_id,
                    "gateway_id": d.alert.gateway_id,
                    "channel": d.channel,
                    "route": d.route,
                    "event": d.event,
                    "idempotency_key": d.idempotency_key,
                    "attempt": d.attempts,
                    "outcome": outcome,
                    "detail": detail,
                    "retry_at_ms": None if final else retry_at_ms,
                },
            )
