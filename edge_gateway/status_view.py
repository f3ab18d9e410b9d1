"""Human-readable renderings of the gateway status JSON (for `iot-edge status` and `--summary`)."""

from __future__ import annotations

from typing import Any

from iot_common.humanize import human_age, human_bytes


def summary_line(status: dict[str, Any], published: int | None = None) -> str:
    b, c, r = status["buffer"], status["counters"], status["rates"]
    sim = f"simulated {published:,} | " if published else ""
    return (
        f"{sim}received {c['received_total']:,} ({r['received_per_s']:.0f}/s) | "
        f"forwarded {c['forwarded_total']:,} ({r['forwarded_per_s']:.0f}/s) | "
        f"buffered {b['depth']:,} ({human_bytes(b['bytes'])}, "
        f"oldest {human_age(b['oldest_age_s'])}{_runway_suffix(b)}) | "
        f"dead-lettered {c['dead_lettered_total']:,} | dropped {b['dropped_total']:,} | "
        f"kafka {'up' if status['kafka']['connected'] else 'DOWN'}" + _failed_suffix(status)
    )


def runway_text(buffer: dict[str, Any]) -> str:
    """`full in 42.0 min` at the current net growth, or why there is no runway."""
    runway = buffer.get("runway_s")
    if runway is None:
        return "not growing"
    return "FULL, dropping oldest" if runway < 1 else f"full in {human_age(runway)}"


def _runway_suffix(buffer: dict[str, Any]) -> str:
    # Only while growing: the live line stays short when all is well.
    return "" if buffer.get("runway_s") is None else f", {runway_text(buffer)}"


def _failed_suffix(status: dict[str, Any]) -> str:
    failed = status.get("failed_tasks") or []
    return f" | FAILED {', '.join(failed)}" if failed else ""


def _kafka_problem(kafka: dict[str, Any]) -> str:
    if kafka["connected"] or not kafka["last_error"]:
        return ""
    if kafka.get("failure") and kafka.get("hint"):
        return f" ({kafka['failure']}: {kafka['hint']}; {kafka['last_error']})"
    return f" ({kafka['last_error']})"


def render_status(status: dict[str, Any]) -> str:
    b, c, r = status["buffer"], status["counters"], status["rates"]
    mqtt, kafka = status["mqtt"], status["kafka"]
    fill = b["bytes"] / b["max_bytes"] * 100 if b["max_bytes"] else 0.0
    rows = [
        (
            "gateway",
            f"{status['gateway_id']} (site {status['site']}), up {human_age(status['uptime_s'])}",
        ),
        (
            "mqtt",
            f"{mqtt['mode']} broker {mqtt['address']}, "
            f"{'subscribed' if mqtt['connected'] else 'NOT CONNECTED'}",
        ),
        (
            "kafka",
            f"{kafka['bootstrap']}, {'connected' if kafka['connected'] else 'DOWN'}"
            + _kafka_problem(kafka),
        ),
        (
            "buffer",
            f"{b['depth']:,} records, {human_bytes(b['bytes'])} of "
            f"{human_bytes(b['max_bytes'])} ({fill:.1f}%), oldest {human_age(b['oldest_age_s'])}, "
            f"{b['in_flight']:,} in flight",
        ),
        (
            "runway",
            "- (the buffer is not growing)"
            if b.get("runway_s") is None
            else f"{runway_text(b)} at the current input and forward rates",
        ),
        ("rates", f"received {r['received_per_s']:.1f}/s, forwarded {r['forwarded_per_s']:.1f}/s"),
        (
            "totals",
            f"received {c['received_total']:,}, forwarded {c['forwarded_total']:,}, "
            f"dropped {b['dropped_total']:,}, dead-lettered {c['dead_lettered_total']:,}, "
            f"kafka-rejected {c['kafka_rejected_total']:,}",
        ),
    ]
    reasons = c.get("dead_lettered_by_reason") or {}
    if reasons:
        rows.append(("dead letters", ", ".join(f"{k} {v:,}" for k, v in reasons.items())))
    if c.get("seq_gaps_total"):
        rows.append(("seq gaps", f"{c['seq_gaps_total']:,} readings missing by seq"))
    sparkplug = status.get("sparkplug")
    if sparkplug:
        events = ", ".join(f"{k} {v:,}" for k, v in sparkplug["by_reason"].items()) or "none"
        rows.append(
            (
                "sparkplug",
                f"host {sparkplug['host_id']}, {sparkplug['nodes_online']:,} nodes online, "
                f"{sparkplug['rebirths_requested_total']:,} rebirths requested; {events}",
            )
        )
    refused = {
        k: c.get(f"mqtt_{k}_refused_total") or 0 for k in ("connect", "publish", "subscribe")
    }
    if any(refused.values()):
        rows.append(
            ("mqtt refused", ", ".join(f"{k} {v:,}" for k, v in refused.items()) + " (see log)")
        )
    append_errors = c.get("buffer_errors_total") or 0
    forward_errors = c.get("forward_buffer_errors_total") or 0
    if append_errors or forward_errors:
        last = b.get("last_error")
        rows.append(
            (
                "buffer errors",
                f"{append_errors:,} on append, {forward_errors:,} on forward"
                + (f" (last: {last})" if last else ""),
            )
        )
    failed = status.get("failed_tasks") or []
    if failed:
        rows.append(
            ("FAILED tasks", f"{', '.join(failed)} (not ready; see task_failed in the log)")
        )
    rows.extend(connector_rows(status.get("connectors") or []))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def connector_rows(connectors: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """One row per OPC UA or Modbus connector: state, rate, problems by reason, last error."""
    rows = []
    for c in connectors:
        errors = ", ".join(f"{k} {v:,}" for k, v in c["errors"].items())
        text = (
            f"{c['kind']} {c['endpoint']}, {'connected' if c['connected'] else 'NOT CONNECTED'}, "
            f"{c['values_rate']:.1f} values/s, {c['values_total']:,} values"
            + (f", problems: {errors}" if errors else "")
            + (f" (last: {c['last_error']})" if c["last_error"] else "")
        )
        rows.append((f"connector {c['name']}", text))
    return rows
