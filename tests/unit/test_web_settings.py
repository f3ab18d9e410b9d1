"""The web settings: defaults, and the storage secret never shown."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.settings import HubSettings


def test_web_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HUB_WEB_STORAGE_SECRET", "HUB_WEB_HOST", "HUB_WEB_SESSION_HOURS"):
        monkeypatch.delenv(name, raising=False)
    s = HubSettings()
    assert s.web_storage_secret is None
    assert s.web_host == "127.0.0.1"
    assert s.web_session_hours == 12
    assert s.web_client_queue == 1000


def test_storage_secret_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_WEB_STORAGE_SECRET", "s3cret-cookie-key")
    s = HubSettings()
    assert s.web_storage_secret is not None
    assert s.web_storage_secret.get_secret_value() == "s3cret-cookie-key"
    shown = dict(s.describe())
    assert shown["HUB_WEB_STORAGE_SECRET"] == "***"
    assert "s3cret" not in repr(shown) + repr(s)


def test_unset_secret_shows_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_WEB_STORAGE_SECRET", raising=False)
    assert dict(HubSettings().describe())["HUB_WEB_STORAGE_SECRET"] == ""


@pytest.mark.parametrize(
    ("name", "value"), [("HUB_WEB_CLIENT_QUEUE", "0"), ("HUB_WEB_SESSION_HOURS", "0")]
)
def test_bad_web_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        HubSettings()
