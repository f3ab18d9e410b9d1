"""Paths of the dashboard's pages, for links between them."""

from __future__ import annotations

from urllib.parse import quote


def device_href(device_id: str) -> str:
    """The device page's path; the id quoted whole (it may hold anything, a slash included)."""
    return "/device/" + quote(device_id, safe="")
