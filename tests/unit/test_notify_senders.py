"""What a failed send says never holds the secret it was given (an env-referenced URL)."""

from __future__ import annotations

import pytest

from hub.notify.config import parse_channel
from hub.notify.content import notice_for
from hub.notify.senders import ChannelSender
from hub.storage.model import AlertRow

ROW = AlertRow(
    id=1, device_id="d", gateway_id="g", rule="r", severity="critical", state="active",
    acknowledged=False, ack_by=None, ack_at=None, ack_comment=None, metric=None, value=None,
    message="m", raised_at=0, updated_at=0, cleared_at=None, cleared_by=None, occurrences=1,
)  # fmt: skip


@pytest.mark.parametrize("secret_url", ["http://[sekrit-token", "http://h:99999/sekrit-token"])
async def test_a_bad_secret_url_is_not_quoted(
    monkeypatch: pytest.MonkeyPatch, secret_url: str
) -> None:
    monkeypatch.setenv("TEST_SLACK_URL", secret_url)
    channel = parse_channel({"name": "s", "type": "slack", "url": "${TEST_SLACK_URL}"})
    notice = notice_for(
        ROW, event="test", idempotency_key="k", site=None, device_type=None, public_url=None
    )
    sender = ChannelSender(public_url=None)
    try:
        result = await sender.send(channel, [notice], route=None)
    finally:
        await sender.close()
    assert not result.delivered
    assert result.detail is not None
    assert "sekrit" not in result.detail
