"""Structured logs: one event per line as `key=value` pairs (logfmt)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields: list[tuple[str, object]] = [
            ("ts", f"{stamp}.{int(record.msecs):03d}Z"),
            ("level", record.levelname.lower()),
            ("logger", record.name),
            ("event", record.getMessage()),
        ]
        fields += [(k, v) for k, v in record.__dict__.items() if k not in _RESERVED]
        if record.exc_info:
            fields.append(("exc", self.formatException(record.exc_info)))
        return " ".join(f"{key}={_quote(value)}" for key, value in fields)


def configure_logging(level: str = "INFO", **context: Any) -> None:
    """Log to stderr in logfmt; `context` (e.g. gateway=...) is added to every line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    if context:
        handler.addFilter(_ContextFilter(context))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party libraries are chatty at INFO; their warnings still come through, at most one
    # of a kind per interval (aiokafka logs a failed connect per retry, thousands a second).
    # The filter sits on the handler: a logger's own filters do not see its children's records.
    handler.addFilter(RepeatLimitFilter(prefixes=THIRD_PARTY))
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


THIRD_PARTY = ("amqtt", "aiokafka", "transitions")


class RepeatLimitFilter(logging.Filter):
    """Lets one record per (logger, message template) through every `interval_s` seconds; the
    next one that passes carries how many were held back. Only loggers under `prefixes`."""

    def __init__(
        self,
        interval_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        prefixes: tuple[str, ...] = THIRD_PARTY,
    ) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._clock = clock
        self._prefixes = prefixes
        self._last: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._prefixes):
            return True
        key = (record.name, record.msg)
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self._interval_s:
            self._last[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.__dict__["suppressed"] = last[1]
        self._last[key] = (now, 0)
        return True


class _ContextFilter(logging.Filter):
    def __init__(self, context: dict[str, Any]) -> None:
        super().__init__()
        self._context = context

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self._context.items():
            record.__dict__.setdefault(key, value)
        return True
