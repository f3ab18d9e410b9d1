"""WebSocket `/api/v1/live`: the live fan-out, forwarded to API clients.

The token is checked before anything is subscribed; a bad one gets the connection closed with
1008 (accepted first, so that a browser sees the code: a refused handshake shows as 1006). A
client too slow to keep up gets `{"type": "dropped", "reason": "slow client"}` and close code
1013 (try again later): the fan-out's bounded queue drops it, and so does a send blocked for
`SEND_TIMEOUT_S`; it never holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from hub.storage.web_model import Principal
from hub.web.container import WebServices, web_services
from hub.web.fanout import LiveEvent, Subscription
from hub.web.metrics import WebMetrics, WsEnd

__all__ = ["SEND_TIMEOUT_S", "LiveParams", "encode_event", "live", "parse_live_params"]

log = logging.getLogger("hub.web.api")

MAX_WS_DEVICES: Final = 1000
# A send still blocked after this long means the client stopped reading (or its network did):
# it is dropped, as the fan-out drops one whose queue is full.
SEND_TIMEOUT_S: Final = 10.0
_CLOSE_TIMEOUT_S: Final = 2.0

# WebSocket close codes (RFC 6455 section 7.4.1 and the IANA registry).
WS_GOING_AWAY: Final = 1001
WS_POLICY_VIOLATION: Final = 1008
WS_TRY_AGAIN_LATER: Final = 1013


def encode_event(event: LiveEvent) -> str:
    if event.kind == "alert":
        body: dict[str, Any] = {"type": "alert", "alert": event.alert}
    else:
        body = {"type": "readings", "readings": [r.to_json() for r in event.readings]}
    return json.dumps(body, separators=(",", ":"), allow_nan=False)


class _EncodedEvents:
    """Each event's JSON text, computed once however many clients it goes to: the fan-out hands
    the same `LiveEvent` to every subscriber that wants all of it. Keyed by identity, holding the
    event so that its id is not reused while cached."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._cache: OrderedDict[int, tuple[LiveEvent, str]] = OrderedDict()

    def text(self, event: LiveEvent) -> str:
        hit = self._cache.get(id(event))
        if hit is not None and hit[0] is event:
            return hit[1]
        text = encode_event(event)
        self._cache[id(event)] = (event, text)
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return text


_encoded = _EncodedEvents()


@dataclass(frozen=True, slots=True)
class LiveParams:
    devices: frozenset[str] | None  # None: every device
    alerts: bool


_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})


def parse_live_params(query: Mapping[str, str]) -> LiveParams:
    """`devices` (comma list; absent: every device) and `alerts` (default true), or ValueError."""
    raw_alerts = query.get("alerts", "true").strip().lower()
    if raw_alerts not in _TRUE | _FALSE:
        raise ValueError(f"alerts must be true or false, got {raw_alerts[:20]!r}")
    devices: frozenset[str] | None = None
    if "devices" in query:
        devices = frozenset(d.strip() for d in query["devices"].split(",") if d.strip())
        if len(devices) > MAX_WS_DEVICES:
            raise ValueError(f"at most {MAX_WS_DEVICES} devices, got {len(devices)}")
    return LiveParams(devices=devices, alerts=raw_alerts in _TRUE)


def _ws_token(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return websocket.query_params.get("token") or None


def _peer(websocket: WebSocket) -> str:
    client = websocket.client
    return f"{client.host}:{client.port}" if client else "-"


async def _refuse(websocket: WebSocket, metrics: WebMetrics, reason: str) -> None:
    metrics.ws_rejected_total += 1
    log.info("ws_rejected", extra={"client": _peer(websocket), "reason": reason})
    await websocket.accept()
    await websocket.close(code=WS_POLICY_VIOLATION, reason=reason)


async def live(websocket: WebSocket) -> None:
    services = web_services(websocket)
    metrics = services.metrics
    admitted = await _admit(websocket, services)
    if admitted is None:
        return
    principal, params = admitted
    # Subscribed before the handshake completes: whatever is published once the client sees
    # the connection open reaches it.
    sub = services.fanout.subscribe(devices=params.devices, alerts=params.alerts)
    try:
        await websocket.accept()
    except (WebSocketDisconnect, WebSocketDisconnected, OSError):
        sub.close()
        return
    metrics.ws_accepted_total += 1
    metrics.ws_clients += 1
    peer, started = _peer(websocket), time.monotonic()
    log.info(
        "ws_connected",
        extra={
            "client": peer,
            "principal": principal.name,
            "devices": "all" if params.devices is None else len(params.devices),
            "alerts": params.alerts,
        },
    )
    sent = [0]
    how: WsEnd = "error"
    reason = "unexpected error"
    pump = asyncio.create_task(_pump(websocket, sub, sent, metrics), name=f"ws-pump-{peer}")
    reader = asyncio.create_task(_until_disconnect(websocket), name=f"ws-reader-{peer}")
    try:
        await asyncio.wait({pump, reader}, return_when=asyncio.FIRST_COMPLETED)
        how, reason = await _end(websocket, sub, pump, reader)
    finally:
        sub.close()
        for task in (pump, reader):
            task.cancel()
        await asyncio.gather(pump, reader, return_exceptions=True)
        metrics.ws_clients -= 1
        metrics.ws_ended[how] += 1
        fields = {
            "client": peer,
            "principal": principal.name,
            "sent": sent[0],
            "seconds": round(time.monotonic() - started, 1),
            "reason": reason,
        }
        if how == "dropped":
            log.warning("ws_dropped", extra=fields)
        else:
            log.info("ws_disconnected", extra={**fields, "how": how})


async def _admit(
    websocket: WebSocket, services: WebServices
) -> tuple[Principal, LiveParams] | None:
    """The client's principal and parameters; None once a client without a valid token or
    with bad parameters has been refused."""
    token = _ws_token(websocket)
    principal = None if token is None else (await services.auth.check_token(token)).principal
    if principal is None:
        reason = "missing token" if token is None else "invalid or revoked token"
        await _refuse(websocket, services.metrics, reason)
        return None
    try:
        return principal, parse_live_params(websocket.query_params)
    except ValueError as exc:
        await _refuse(websocket, services.metrics, f"bad parameter: {exc}"[:120])
        return None


async def _end(
    websocket: WebSocket, sub: Subscription, pump: asyncio.Task[None], reader: asyncio.Task[None]
) -> tuple[WsEnd, str]:
    """How the connection ended, once the pump or the reader is done (closing it as needed)."""
    if reader.done():
        return "closed", "client closed"
    if (failure := pump.exception()) is not None:
        if isinstance(failure, TimeoutError):
            await _close(websocket, WS_TRY_AGAIN_LATER, "slow client", notify=False)
            return "dropped", f"send blocked for {SEND_TIMEOUT_S:.0f} s"
        if isinstance(failure, WebSocketDisconnect | WebSocketDisconnected | OSError):
            return "closed", "connection lost"
        raise failure
    if sub.dropped:
        await _close(websocket, WS_TRY_AGAIN_LATER, "slow client", notify=True)
        return "dropped", "slow client"
    # The fan-out stopped: the process is shutting down.
    await _close(websocket, WS_GOING_AWAY, "server shutting down", notify=False)
    return "shutdown", "server shutting down"


async def _pump(
    websocket: WebSocket, sub: Subscription, sent: list[int], metrics: WebMetrics
) -> None:
    """Forward the subscription until it ends; a send that blocks too long raises TimeoutError."""
    async for event in sub:
        await asyncio.wait_for(websocket.send_text(_encoded.text(event)), SEND_TIMEOUT_S)
        sent[0] += 1
        metrics.ws_messages_total += 1


async def _until_disconnect(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it closes."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _close(websocket: WebSocket, code: int, reason: str, *, notify: bool) -> None:
    """Best effort: the client may be gone, or too stuck to take even the close frame."""
    with contextlib.suppress(
        TimeoutError, WebSocketDisconnect, WebSocketDisconnected, OSError, RuntimeError
    ):
        async with asyncio.timeout(_CLOSE_TIMEOUT_S):
            if notify:
                await websocket.send_text(json.dumps({"type": "dropped", "reason": reason}))
            await websocket.close(code=code, reason=reason)
