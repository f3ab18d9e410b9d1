"""The web layer's values: roles, filters and their validation, JSON shapes."""

from __future__ import annotations

import pytest

from hub.web.model import (
    ROLES,
    AlertFilter,
    DeviceFilter,
    DeviceView,
    Page,
    Principal,
    can_acknowledge,
    can_administer,
    check_role,
    has_role,
)


def test_roles_are_ordered_and_grant_what_they_should() -> None:
    assert ROLES == ("viewer", "operator", "admin")
    assert [can_acknowledge(r) for r in ROLES] == [False, True, True]
    assert [can_administer(r) for r in ROLES] == [False, False, True]
    assert has_role("admin", "operator")
    assert not has_role("viewer", "operator")


def test_check_role_refuses_unknown_roles() -> None:
    assert check_role("operator") == "operator"
    with pytest.raises(ValueError, match="expected one of viewer, operator, admin"):
        check_role("root")


@pytest.mark.parametrize(
    ("f", "message"),
    [
        (DeviceFilter(limit=0), "limit must be within 1..1000"),
        (DeviceFilter(limit=1001), "limit must be within 1..1000"),
        (DeviceFilter(offset=-1), "offset must be >= 0"),
        (DeviceFilter(state="sleeping"), "unknown device state 'sleeping'"),
    ],
)
def test_bad_device_filters_are_refused(f: DeviceFilter, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        f.validate()


@pytest.mark.parametrize(
    ("f", "message"),
    [
        (AlertFilter(status="open"), "unknown alert status 'open'"),  # type: ignore[arg-type]
        (AlertFilter(severity="info"), "unknown severity 'info'"),  # type: ignore[arg-type]
        (AlertFilter(limit=5000), "limit must be within"),
    ],
)
def test_bad_alert_filters_are_refused(f: AlertFilter, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        f.validate()


def test_good_filters_pass() -> None:
    assert DeviceFilter(state="online", limit=1000).validate().state == "online"
    assert AlertFilter(status="unacknowledged", severity="critical").validate().limit == 100


def test_page_json_converts_its_items() -> None:
    device = DeviceView(
        device_id="cnc-01",
        site="site-1",
        type="cnc_spindle",
        gateway_id="gw-1",
        state="online",
        last_seen=1,
        metrics=("load", "temp"),
        latest={"temp": 61.5, "running": True},
        latest_ts=1,
        active_alerts=2,
        worst_severity="critical",
    )
    page = Page(items=[device], total=7, limit=1, offset=3)
    body = page.to_json()
    assert body["total"] == 7
    assert body["offset"] == 3
    assert body["items"][0]["metrics"] == ["load", "temp"]
    assert body["items"][0]["latest"] == {"temp": 61.5, "running": True}
    assert Principal("token:ci", "viewer").to_json() == {"name": "token:ci", "role": "viewer"}
