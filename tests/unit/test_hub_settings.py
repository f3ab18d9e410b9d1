from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.settings import HubSettings


def test_defaults_point_at_local_services(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HUB_KAFKA_BOOTSTRAP", "HUB_DATABASE_URL", "HUB_REDIS_URL", "HUB_HTTP_PORT"):
        monkeypatch.delenv(name, raising=False)
    s = HubSettings()
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.database_url == "postgresql://iot:iot@127.0.0.1:5432/iot"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.http_port == 8080


def test_urls_are_shown_with_passwords_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_DATABASE_URL", "postgresql://app:pg-s3cret@db:5432/iot")
    monkeypatch.setenv("HUB_REDIS_URL", "redis://:r3dis@cache:6379/1")
    shown = dict(HubSettings().describe())
    assert shown["HUB_DATABASE_URL"] == "postgresql://app:***@db:5432/iot"
    assert shown["HUB_REDIS_URL"] == "redis://:***@cache:6379/1"
    assert "s3cret" not in repr(shown)
    assert "r3dis" not in repr(shown)


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_TOPIC_PARTITIONS", "0")
    with pytest.raises(ValidationError):
        HubSettings()
