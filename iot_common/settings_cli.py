"""What both CLIs (`iot-edge`, `iot-hub`) do with their settings: load them from the environment
with one clear line per bad variable, and print the effective values with secrets masked.
Standard library and pydantic only, so the hub install can use it too."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TextIO, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr, ValidationError

S = TypeVar("S")


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to print or log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def load_settings(factory: Callable[[], S], prefix: str) -> S:
    """`factory()`, or exit 2 naming each `{prefix}*` variable that is wrong and why."""
    try:
        return factory()
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            if err["loc"]:
                name = prefix + "_".join(str(p) for p in err["loc"]).upper()
                print(f"invalid setting {name}: {err['msg']}", file=sys.stderr)
            else:  # a check across settings: its message names them
                message = err["msg"].removeprefix("Value error, ")
                print(f"invalid settings: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def describe_settings(settings: BaseModel, prefix: str) -> list[tuple[str, str]]:
    """Effective settings as (ENV_NAME, value) pairs, secrets masked: every SecretStr and
    `*password` field as ***, and the password inside every `*_url` field."""
    rows = []
    for name, value in settings.model_dump().items():
        shown = "" if value is None else str(value)
        if isinstance(value, SecretStr) or (name.endswith("password") and value):
            shown = "***"
        elif name.endswith("_url"):
            shown = mask_url(shown)
        rows.append((f"{prefix}{name.upper()}", shown))
    return rows


def print_settings(
    rows: Iterable[tuple[str, str]], prefix: str, stream: TextIO | None = None
) -> None:
    stream = stream or sys.stdout
    print(f"effective settings (environment {prefix}*; secrets masked):", file=stream)
    for name, value in rows:
        print(f"  {name}={value}", file=stream)
    stream.flush()
