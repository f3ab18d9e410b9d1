"""One metric's Plotly chart on the device page.

The figure (`metric_figure`, pure) is sent whole only when the time range changes. Live readings
are appended with Plotly's `extendTraces` in batches (one call per chart per tick), bounded to
`max_points` so a chart open all shift stays the same size; alert markers are appended the same
way. The points shown are mirrored on the server (bounded alike) for the CSV export and so that
the figure the server holds always matches what the browser draws.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Final, cast
from zoneinfo import ZoneInfo

from nicegui import ui

from hub.web.model import AlertRow, Series
from hub.web.views.figure import MARKER_Y, alert_applies, marker_text, metric_figure
from hub.web.views.times import plot_x, plot_xs

__all__ = ["MARKER_Y", "MetricChart", "marker_text", "metric_figure"]

log = logging.getLogger(__name__)

LINE_TRACE: Final = 0
WARNING_TRACE: Final = 1
CRITICAL_TRACE: Final = 2
SEVERITY_TRACE: Final = {"warning": WARNING_TRACE, "critical": CRITICAL_TRACE}
READY_TIMEOUT_S: Final = 30.0


class MetricChart:
    """A `ui.plotly` for one metric; see the module docstring."""

    def __init__(
        self, *, metric: str, unit: str, flag: bool, tz: ZoneInfo, label: str | None = None
    ) -> None:
        self.metric = metric
        self.label = label
        self.unit = unit
        self.flag = flag
        self.tz = tz
        self.ts: list[int] = []
        self.values: list[float] = []
        self.max_points = 3600
        self.appended_total = 0  # points sent with extendTraces (for tests and the status line)
        self._ready = False
        self._pending: list[tuple[int, dict[str, Any]]] = []  # held until the plot is drawn
        self.plot = ui.plotly(
            metric_figure(
                metric=metric,
                unit=unit,
                flag=flag,
                xs=[],
                values=[],
                alerts=[],
                tz=tz,
                x_range=None,
                label=label,
            )
        ).classes("w-full")
        self.plot.mark(f"chart-{metric}").props(f"data-testid=chart-{metric}")

    @property
    def ready(self) -> bool:
        return self._ready

    def show(
        self,
        series: Series,
        alerts: Iterable[AlertRow],
        *,
        x_range: tuple[int, int] | None,
        max_points: int,
    ) -> None:
        """Replace the whole figure (a range change): the one place the figure is resent."""
        self.ts = list(series.ts)
        self.values = list(series.values)
        self.max_points = max_points
        self._pending.clear()
        figure = metric_figure(
            metric=self.metric,
            unit=self.unit,
            flag=self.flag,
            xs=plot_xs(self.ts, self.tz),
            values=self.values,
            alerts=alerts,
            tz=self.tz,
            x_range=None
            if x_range is None
            else (plot_x(x_range[0], self.tz), plot_x(x_range[1], self.tz)),
            label=self.label,
        )
        self.plot.update_figure(figure)

    async def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> bool:
        """Until the browser has loaded Plotly and drawn this chart (extendTraces before that
        would be lost); then flush what was held. False if it did not happen in time."""
        code = f"return !!(getHtmlElement({self.plot.id}) || {{}})._fullLayout"
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._ready:
            try:
                drawn = await self.plot.client.run_javascript(code, timeout=2)
            except TimeoutError:
                drawn = False
            if drawn:
                self._ready = True
                break
            if asyncio.get_running_loop().time() > deadline:
                log.warning("chart_not_ready", extra={"metric": self.metric})
                return False
            await asyncio.sleep(0.2)
        for trace, update in self._pending:
            self._extend(trace, update)
        self._pending.clear()
        return True

    def append(self, points: Sequence[tuple[int, float]]) -> int:
        """Append live points (any order; those not newer than the last shown are skipped, so a
        replayed reading draws nothing twice). One extendTraces for the lot; returns how many."""
        fresh = sorted(p for p in points if not self.ts or p[0] > self.ts[-1])
        deduped: list[tuple[int, float]] = []
        for ts, value in fresh:
            if deduped and deduped[-1][0] == ts:
                deduped[-1] = (ts, value)
            else:
                deduped.append((ts, value))
        if not deduped:
            return 0
        self.ts.extend(ts for ts, _ in deduped)
        self.values.extend(v for _, v in deduped)
        if len(self.ts) > self.max_points:
            del self.ts[: len(self.ts) - self.max_points]
            del self.values[: len(self.values) - self.max_points]
        xs = plot_xs([ts for ts, _ in deduped], self.tz)
        ys = [v for _, v in deduped]
        line = self._trace(LINE_TRACE)
        line["x"].extend(xs)
        line["y"].extend(ys)
        if len(line["x"]) > self.max_points:
            del line["x"][: len(line["x"]) - self.max_points]
            del line["y"][: len(line["y"]) - self.max_points]
        self._send(LINE_TRACE, {"x": [xs], "y": [ys]})
        self.appended_total += len(deduped)
        return len(deduped)

    def mark(self, alert: dict[str, Any]) -> bool:
        """Add a live alert's marker; False if it is not about this chart's metric."""
        severity = alert.get("severity")
        raised_at = alert.get("raised_at")
        if severity not in SEVERITY_TRACE or not isinstance(raised_at, int):
            return False
        if not alert_applies(alert.get("metric"), self.metric):
            return False
        trace = SEVERITY_TRACE[str(severity)]
        x, text = plot_x(raised_at, self.tz), marker_text(alert)
        held = self._trace(trace)
        held["x"].append(x)
        held["y"].append(MARKER_Y)
        held["text"].append(text)
        self._send(trace, {"x": [[x]], "y": [[MARKER_Y]], "text": [[text]]})
        return True

    def _trace(self, index: int) -> dict[str, Any]:
        figure = cast(dict[str, Any], self.plot.figure)
        return cast(dict[str, Any], figure["data"][index])

    def _send(self, trace: int, update: dict[str, Any]) -> None:
        if self._ready:
            self._extend(trace, update)
        else:
            self._pending.append((trace, update))

    def _extend(self, trace: int, update: dict[str, Any]) -> None:
        self.plot.run_plot_method("extendTraces", update, [trace], self.max_points)
