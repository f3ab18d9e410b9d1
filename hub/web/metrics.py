"""Prometheus metrics of the web process: counters and gauges kept in memory, rendered in the text
exposition format 0.0.4 on `/metrics`. No client library: a handful of families, one process.

`METRICS` is the process's one instance. The API counts its own requests and WebSocket clients;
the login page counts logins with `METRICS.login(ok=...)`; the live fan-out's figures are read
from its `FanoutStats` when the page is rendered, so they are never copied twice.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

__all__ = [
    "CONTENT_TYPE",
    "METRICS",
    "Family",
    "FanoutFigures",
    "WebMetrics",
    "WsEnd",
    "parse",
    "render",
]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family: a name, its type and help, and its samples (labels, value)."""

    name: str
    type: Literal["counter", "gauge"]
    help: str
    samples: Sequence[tuple[Labels, float]]


def _escape_label(value: str) -> str:
    # Exposition format 0.0.4: backslash, double quote and line feed are escaped in label values.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def render(families: Iterable[Family]) -> str:
    """The text exposition of ``families``, in the order given; ends with a line feed."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for labels, value in family.samples:
            if labels:
                inner = ",".join(f'{key}="{_escape_label(val)}"' for key, val in labels)
                lines.append(f"{family.name}{{{inner}}} {_number(value)}")
            else:
                lines.append(f"{family.name} {_number(value)}")
    return "\n".join(lines) + "\n"


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
        families = [
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
            Family(
                "hub_web_ws_clients",
                "gauge",
                "WebSocket clients connected now.",
                _one(self.ws_clients),
            ),
            Family(
                "hub_web_ws_accepted_total",
                "counter",
                "WebSocket clients authenticated and subscribed.",
                _one(self.ws_accepted_total),
            ),
            Family(
                "hub_web_ws_rejected_total",
                "counter",
                "WebSocket connections refused (missing or invalid token, bad parameters).",
                _one(self.ws_rejected_total),
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
                _one(self.ws_messages_total),
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
        if fanout is not None:
            families += [
                Family(
                    "hub_web_live_subscribers",
                    "gauge",
                    "Live subscriptions (pages and WebSocket clients) now.",
                    _one(fanout.subscribers),
                ),
                Family(
                    "hub_web_live_delivered_total",
                    "counter",
                    "Live events queued for a subscriber.",
                    _one(fanout.delivered_total),
                ),
                Family(
                    "hub_web_live_dropped_total",
                    "counter",
                    "Live subscribers dropped because their queue was full.",
                    _one(fanout.dropped_subscribers_total),
                ),
                Family(
                    "hub_web_live_redis_reconnects_total",
                    "counter",
                    "Times the live Redis subscription was re-established.",
                    _one(fanout.redis_reconnects_total),
                ),
            ]
        families += [
            Family(
                "process_cpu_seconds_total",
                "counter",
                "CPU time of the web process (user and system).",
                _one(round(time.process_time(), 3)),
            ),
            Family(
                "process_start_time_seconds",
                "gauge",
                "Start of the web process, seconds since the epoch.",
                _one(round(self.started, 3)),
            ),
        ]
        return families

    def render(self, fanout: FanoutFigures | None = None) -> str:
        return render(self.families(fanout))


_WS_ENDS: Final[tuple[WsEnd, ...]] = ("closed", "dropped", "shutdown", "error")


def _one(value: float) -> list[tuple[Labels, float]]:
    return [((), value)]


def parse(text: str) -> Mapping[str, float]:
    """Sample lines of an exposition as {"name{labels}": value}: for tests and the benchmark."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        samples[key] = float(value)
    return samples


METRICS: Final = WebMetrics()
