"""Prometheus metrics of the web process: counters and gauges kept in memory, rendered in the text
exposition format 0.0.4 on `/metrics` (iot_common.prometheus). No client library: a handful of
families, one process.

One instance per app, in its services (`hub.web.container.WebServices.metrics`). The API counts
its own requests and WebSocket clients; sign-in counts logins with `login(ok=...)`; the live
fan-out's figures are read from its `FanoutStats` when the page is rendered, so they are never
copied twice.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from iot_common.prometheus import CONTENT_TYPE, Family, one, render

__all__ = ["CONTENT_TYPE", "FanoutFigures", "WebMetrics", "WsEnd"]


class FanoutFigures(Protocol):
    """What the metrics read from `hub.web.fanout.FanoutStats` (structurally)."""

    @property
    def subscribers(self) -> int: ...
    @property
    def delivered_total(self) -> int: ...
    @property
    def dropped_subscribers_total(self) -> int: ...
    @property
    def redis_reconnects_total(self) -> int: ...


WsEnd = Literal["closed", "dropped", "shutdown", "error"]


@dataclass
class WebMetrics:
    """The process's counters. Plain attributes and `Counter`s: one event loop, no locking."""

    http_requests: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    http_seconds: defaultdict[tuple[str, str], float] = field(
        default_factory=lambda: defaultdict(float)
    )
    ws_clients: int = 0
    ws_accepted_total: int = 0
    ws_rejected_total: int = 0
    ws_ended: Counter[WsEnd] = field(default_factory=Counter)
    ws_messages_total: int = 0
    logins: Counter[bool] = field(default_factory=Counter)
    alert_actions: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.time)

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """``route`` is the path template (`/api/v1/devices/{device_id}`), never the raw path:
        one series per route, however many devices are asked for."""
        self.http_requests[(route, method, status)] += 1
        self.http_seconds[(route, method)] += seconds

    def login(self, *, ok: bool) -> None:
        self.logins[ok] += 1

    def families(self, fanout: FanoutFigures | None = None) -> list[Family]:
        """Every family of the web process, in the order `/metrics` shows them."""
        live = _live_families(fanout) if fanout is not None else []
        return [*self._http_families(), *self._client_families(), *live, *self._process_families()]

    def _http_families(self) -> list[Family]:
        return [
            Family(
                "hub_web_http_requests_total",
                "counter",
                "API requests answered, by route template, method and status code.",
                [
                    ((("route", r), ("method", m), ("status", str(s))), n)
                    for (r, m, s), n in sorted(self.http_requests.items())
                ],
            ),
            Family(
                "hub_web_http_request_seconds_total",
                "counter",
                "Time spent answering API requests, by route template and method.",
                [
                    ((("route", r), ("method", m)), round(sec, 6))
                    for (r, m), sec in sorted(self.http_seconds.items())
                ],
            ),
        ]

    def _client_families(self) -> list[Family]:
        """WebSocket clients, logins and alert actions."""
        return [
            Family(
                "hub_web_ws_clients",
                "gauge",
                "WebSocket clients connected now.",
                one(self.ws_clients),
            ),
            Family(
                "hub_web_ws_accepted_total",
                "counter",
                "WebSocket clients authenticated and subscribed.",
                one(self.ws_accepted_total),
            ),
            Family(
                "hub_web_ws_rejected_total",
                "counter",
                "WebSocket connections refused (missing or invalid token, bad parameters).",
                one(self.ws_rejected_total),
            ),
            Family(
                "hub_web_ws_ended_total",
                "counter",
                "WebSocket clients gone, by how: closed by the client, dropped as too slow, "
                "closed at shutdown, or an error.",
                [((("how", how),), self.ws_ended[how]) for how in _WS_ENDS],
            ),
            Family(
                "hub_web_ws_messages_total",
                "counter",
                "Messages sent to WebSocket clients.",
                one(self.ws_messages_total),
            ),
            Family(
                "hub_web_logins_total",
                "counter",
                "Dashboard logins, by outcome.",
                [
                    ((("outcome", "ok"),), self.logins[True]),
                    ((("outcome", "failed"),), self.logins[False]),
                ],
            ),
            Family(
                "hub_web_alert_actions_total",
                "counter",
                "Alerts acknowledged or cleared through the API.",
                [((("action", a),), self.alert_actions[a]) for a in ("ack", "clear")],
            ),
        ]

    def _process_families(self) -> list[Family]:
        return [
            Family(
                "process_cpu_seconds_total",
                "counter",
                "CPU time of the web process (user and system).",
                one(round(time.process_time(), 3)),
            ),
            Family(
                "process_start_time_seconds",
                "gauge",
                "Start of the web process, seconds since the epoch.",
                one(round(self.started, 3)),
            ),
        ]

    def render(self, fanout: FanoutFigures | None = None) -> str:
        return render(self.families(fanout))


_WS_ENDS: Final[tuple[WsEnd, ...]] = ("closed", "dropped", "shutdown", "error")


def _live_families(fanout: FanoutFigures) -> list[Family]:
    return [
        Family(
            "hub_web_live_subscribers",
            "gauge",
            "Live subscriptions (pages and WebSocket clients) now.",
            one(fanout.subscribers),
        ),
        Family(
            "hub_web_live_delivered_total",
            "counter",
            "Live events queued for a subscriber.",
            one(fanout.delivered_total),
        ),
        Family(
            "hub_web_live_dropped_total",
            "counter",
            "Live subscribers dropped because their queue was full.",
            one(fanout.dropped_subscribers_total),
        ),
        Family(
            "hub_web_live_redis_reconnects_total",
            "counter",
            "Times the live Redis subscription was re-established.",
            one(fanout.redis_reconnects_total),
        ),
    ]
