"""A metric's chart as a Plotly figure (a plain dict), with its alerts as markers: no UI."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any, Final
from zoneinfo import ZoneInfo

from hub.web.model import AlertRow
from hub.web.views.numbers import format_value
from hub.web.views.times import plot_x

MARKER_Y: Final = 0.96  # alert markers sit along the top edge, on a hidden 0..1 axis
GRID_COLOUR: Final = "rgba(128,128,128,0.2)"
TEXT_COLOUR: Final = "#8a8a8a"
CHART_HEIGHT_PX: Final = 240


def marker_text(alert: AlertRow | dict[str, Any]) -> str:
    """Hover text of an alert marker, HTML-escaped (Plotly renders a subset of HTML in it)."""
    get = alert.get if isinstance(alert, dict) else lambda key: getattr(alert, key, None)
    severity, state, message = get("severity"), get("state"), get("message")
    metric, value = get("metric"), get("value")
    text = f"{severity} ({state}): {message}"
    if metric is not None and isinstance(value, int | float):
        text += f" [{metric} = {format_value(float(value))}]"
    return html.escape(text)


def alert_applies(alert_metric: object, metric: str) -> bool:
    """An alert about a metric marks that metric's chart; one about the whole device (offline,
    flatline of no particular metric) marks every chart."""
    return alert_metric is None or alert_metric == metric


def metric_figure(
    *,
    metric: str,
    unit: str,
    flag: bool,
    xs: Sequence[str],
    values: Sequence[float],
    alerts: Iterable[AlertRow],
    tz: ZoneInfo,
    x_range: tuple[str, str] | None,
    label: str | None = None,
) -> dict[str, Any]:
    """The whole Plotly figure (a plain dict: declarative is what NiceGUI sends fastest);
    `label`: the metric's display name (hub.metadata), shown with its key."""
    line: dict[str, Any] = {
        "type": "scatter",
        "mode": "lines",
        "x": list(xs),
        "y": list(values),
        "name": metric,
        "line": {"width": 1.5, "shape": "hv" if flag else "linear"},
        "hovertemplate": "%{x}<br>%{y}<extra></extra>",
    }
    name = f"{label} · {metric}" if label and label != metric else metric
    title = f"{name} ({unit})" if unit else name
    return {
        "data": [line, *_marker_traces(metric, alerts, tz)],
        "layout": _layout(title, flag, x_range),
        "config": {
            "displaylogo": False,
            "displayModeBar": False,  # drag to zoom, double-click to reset: no toolbar clutter
            "responsive": True,
        },
    }


def _marker_traces(metric: str, alerts: Iterable[AlertRow], tz: ZoneInfo) -> list[dict[str, Any]]:
    """The warning and the critical alerts of the metric, as markers along the top edge."""
    markers: dict[str, tuple[list[str], list[float], list[str]]] = {
        "warning": ([], [], []),
        "critical": ([], [], []),
    }
    for alert in alerts:
        if alert_applies(alert.metric, metric):
            x, y, text = markers[alert.severity]
            x.append(plot_x(alert.raised_at, tz))
            y.append(MARKER_Y)
            text.append(marker_text(alert))
    traces = []
    for severity, colour in (("warning", "#f2c037"), ("critical", "#c10015")):
        x, y, text = markers[severity]
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "x": x,
                "y": y,
                "text": text,
                "yaxis": "y2",
                "name": f"{severity} alerts",
                "marker": {"symbol": "triangle-down", "size": 11, "color": colour},
                "hovertemplate": "%{x}<br>%{text}<extra></extra>",
            }
        )
    return traces


def _layout(title: str, flag: bool, x_range: tuple[str, str] | None) -> dict[str, Any]:
    yaxis: dict[str, Any] = {"gridcolor": GRID_COLOUR, "zeroline": False, "automargin": True}
    if flag:
        yaxis.update(range=[-0.1, 1.1], tickvals=[0, 1], ticktext=["no", "yes"])
    xaxis: dict[str, Any] = {"type": "date", "gridcolor": GRID_COLOUR}
    if x_range is not None:
        xaxis["range"] = list(x_range)
    return {
        "height": CHART_HEIGHT_PX,
        "margin": {"l": 50, "r": 12, "t": 30, "b": 30},
        "title": {"text": html.escape(title), "font": {"size": 13}, "x": 0.01},
        "xaxis": xaxis,
        "yaxis": yaxis,
        "yaxis2": {"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True},
        "showlegend": False,
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"color": TEXT_COLOUR},
        "hovermode": "closest",
    }
