"""The body each channel type sends for a group of notices (one message). Pure.

* `iot-v1` webhook: our own JSON, versioned by its `version` field (docs/notifications.md);
  each notice carries its stable `idempotency_key`, and the message one derived from them.
* `alertmanager` webhook: Prometheus Alertmanager's webhook body (version "4"), so receivers
  written for it work unchanged.
* Slack incoming webhook (`text` plus an attachment per notice) and Teams (MessageCard).
* E-mail: subject, plain text and HTML.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from hub.notify.content import Notice, utc_text

__all__ = [
    "WEBHOOK_VERSION",
    "EmailBody",
    "alertmanager_body",
    "email_body",
    "group_key",
    "iot_body",
    "slack_body",
    "teams_body",
]

WEBHOOK_VERSION: Final = "iot-notify/1"
ALERTMANAGER_VERSION: Final = "4"
# Alertmanager's "zero" endsAt for a firing alert.
_NO_END: Final = "0001-01-01T00:00:00Z"
_COLOURS: Final = {"critical": "#d32f2f", "warning": "#f9a825", "resolved": "#2e7d32"}


def group_key(notices: Sequence[Notice]) -> str:
    """The message's idempotency key: the same notices give the same key, whatever the order."""
    keys = "\n".join(sorted(n.idempotency_key for n in notices))
    return hashlib.sha256(keys.encode()).hexdigest()[:32]


def _status(notices: Sequence[Notice]) -> str:
    return "resolved" if all(n.resolved for n in notices) else "firing"


def iot_body(notices: Sequence[Notice], *, channel: str, route: str | None) -> dict[str, Any]:
    return {
        "version": WEBHOOK_VERSION,
        "idempotency_key": group_key(notices),
        "channel": channel,
        "route": route,
        "status": _status(notices),
        "notifications": [n.to_json() for n in notices],
    }


def _labels(n: Notice) -> dict[str, str]:
    labels = {"alertname": n.rule, "severity": n.severity}
    for name, value in (
        ("device", n.device_id),
        ("gateway", n.gateway_id),
        ("site", n.site),
        ("device_type", n.device_type),
        ("metric", n.metric),
    ):
        if value:
            labels[name] = value
    return labels


def _common(dicts: Sequence[dict[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    first = dicts[0]
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in dicts[1:])}


def alertmanager_body(
    notices: Sequence[Notice], *, channel: str, route: str | None, external_url: str | None
) -> dict[str, Any]:
    alerts = []
    all_labels, all_annotations = [], []
    for n in notices:
        labels = _labels(n)
        annotations = {"summary": n.message, "idempotency_key": n.idempotency_key}
        if n.value is not None:
            annotations["value"] = f"{n.value:g}"
        if n.device_url:
            annotations["device_url"] = n.device_url
        all_labels.append(labels)
        all_annotations.append(annotations)
        alerts.append(
            {
                "status": "resolved" if n.resolved else "firing",
                "labels": labels,
                "annotations": annotations,
                "startsAt": utc_text(n.raised_at),
                "endsAt": utc_text(n.cleared_at) if n.cleared_at is not None else _NO_END,
                "generatorURL": n.alert_url or "",
                "fingerprint": hashlib.sha256(f"alert-{n.alert_id}".encode()).hexdigest()[:16],
            }
        )
    return {
        "version": ALERTMANAGER_VERSION,
        "groupKey": f"{route or '-'}:{channel}:{group_key(notices)}",
        "truncatedAlerts": 0,
        "status": _status(notices),
        "receiver": channel,
        "groupLabels": {"route": route or "-"},
        "commonLabels": _common(all_labels),
        "commonAnnotations": _common(all_annotations),
        "externalURL": external_url or "",
        "alerts": alerts,
    }


def _colour(n: Notice) -> str:
    if n.resolved:
        return _COLOURS["resolved"]
    return _COLOURS.get(n.severity, _COLOURS["warning"])


def _summary(notices: Sequence[Notice]) -> str:
    if len(notices) == 1:
        return notices[0].title
    firing = sum(not n.resolved for n in notices)
    return f"{len(notices)} alert notifications ({firing} firing, {len(notices) - firing} resolved)"


def slack_body(notices: Sequence[Notice]) -> dict[str, Any]:
    return {
        "text": _summary(notices),
        "attachments": [
            {
                "color": _colour(n),
                "title": n.title,
                "title_link": n.alert_url,
                "fields": [{"title": k, "value": v, "short": k != "What"} for k, v in n.facts()],
                "footer": f"idempotency key {n.idempotency_key}",
            }
            for n in notices
        ],
    }


def teams_body(notices: Sequence[Notice]) -> dict[str, Any]:
    actions = []
    for n in notices[:5]:
        for name, uri in (("Open alert", n.alert_url), ("Open device", n.device_url)):
            if uri:
                actions.append(
                    {"@type": "OpenUri", "name": name, "targets": [{"os": "default", "uri": uri}]}
                )
    return {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": _summary(notices),
        "themeColor": _colour(notices[0]).lstrip("#"),
        "title": _summary(notices),
        "sections": [
            {
                "activityTitle": n.title,
                "facts": [{"name": k, "value": v} for k, v in n.facts()],
                "text": f"idempotency key {n.idempotency_key}",
            }
            for n in notices
        ],
        "potentialAction": actions,
    }


@dataclass(frozen=True, slots=True)
class EmailBody:
    subject: str
    text: str
    html: str


def email_body(notices: Sequence[Notice]) -> EmailBody:
    text_parts = []
    html_parts = []
    for n in notices:
        lines = [n.title, *(f"{k}: {v}" for k, v in n.facts())]
        links = [(k, url) for k, url in (("Alert", n.alert_url), ("Device", n.device_url)) if url]
        lines += [f"{label}: {url}" for label, url in links]
        lines.append(f"Idempotency key: {n.idempotency_key}")
        text_parts.append("\n".join(lines))
        rows = "".join(
            f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in n.facts()
        )
        anchors = " · ".join(
            f"<a href='{html.escape(url, quote=True)}'>{html.escape(k)}</a>" for k, url in links
        )
        html_parts.append(
            f"<h3 style='color:{_colour(n)}'>{html.escape(n.title)}</h3>"
            f"<table>{rows}</table><p>{anchors}</p>"
            f"<p style='color:#888'>Idempotency key: {html.escape(n.idempotency_key)}</p>"
        )
    return EmailBody(
        subject=_summary(notices),
        text="\n\n".join(text_parts) + "\n",
        html="<html><body>" + "<hr>".join(html_parts) + "</body></html>",
    )
