"""`/metadata`: device metadata and the asset hierarchy (docs/device-metadata.md). Everyone
signed in sees a device type's or a device's effective metadata; admins edit the admin layer in
a form: an empty field lets the layer below show through (its value is the placeholder), a
refused edit shows the model's message next to the field it names (hub.web.views.metadata_form)
and stores nothing. Saving is audited by `MetadataService`.

`?type=cnc_spindle` or `?device=press-01` opens one; without either, the first known type."""

from __future__ import annotations

import logging
from typing import Final

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from hub.metadata.model import MetadataDoc, parse_document
from hub.storage.metadata_store import Scope
from hub.storage.web_model import DeviceFilter
from hub.web.container import WebServices
from hub.web.metadata_service import DeviceMetadataView
from hub.web.model import can_administer
from hub.web.pages import session
from hub.web.pages.layout import PageFrame, page_frame
from hub.web.views.metadata_form import (
    DEVICE_FIELDS,
    METRIC_FIELDS,
    RANGES,
    field_of,
    form_document,
    form_values,
)

__all__ = ["MetadataPage", "register"]

log = logging.getLogger(__name__)

ADMIN_TIP: Final = "Only admins edit device metadata"
MAX_DEVICES_LISTED: Final = 1000
_LABELS: Final = {
    "display_name": "Display name",
    "area": "Area",
    "line": "Line",
    "machine": "Machine",
    "unit": "Unit",
    "description": "Description",
}


def register(services: WebServices) -> None:
    @ui.page("/metadata", title="Device metadata · IoT Hub")
    async def metadata_page(
        request: Request, type: str | None = None, device: str | None = None
    ) -> RedirectResponse | None:
        principal = await session.current_principal(services.auth)
        if principal is None:
            return session.login_redirect(request)
        frame = await page_frame(services, principal, "metadata")
        page = MetadataPage(frame)
        await page.build(type, device)
        return None


class MetadataPage:
    def __init__(self, frame: PageFrame) -> None:
        self.frame = frame
        self.inputs: dict[str, ui.input] = {}
        self.scope: Scope = "type"
        self.key = ""
        self.metrics: list[str] = []

    @property
    def can_edit(self) -> bool:
        return can_administer(self.frame.principal.role)

    async def build(self, device_type: str | None, device_id: str | None) -> None:
        services = self.frame.services
        types = await services.metadata.known_types()
        devices = await services.reads.devices(DeviceFilter(limit=MAX_DEVICES_LISTED))
        with self.frame.content:
            ui.label("Device metadata").classes("text-xl font-semibold")
            ui.label(
                "Names, units and ranges per device type and per device, and each device's place "
                "in the plant. An admin's entry wins over what the edge reported, which wins over "
                "the packaged defaults; a device's own entries win over its type's."
            ).classes("text-sm opacity-80")
            with ui.row().classes("items-center gap-3 flex-wrap"):
                ui.select(
                    {f"/metadata?type={t}": f"type {t}" for t in types}
                    | {
                        f"/metadata?device={d.device_id}": f"device {d.device_id}"
                        for d in devices.items
                    },
                    label="Edit",
                    value=None,
                    on_change=lambda e: ui.navigate.to(e.value),
                ).classes("min-w-64").mark("metadata-pick")
            self.body = ui.column().classes("w-full gap-3")
        if device_id is not None:
            found = await services.reads.device(device_id)
            if found is None:
                with self.body:
                    ui.label(f"No device {device_id!r}.").mark("metadata-missing")
                return
            view = await services.metadata.device_metadata(found.device_id, found.type)
            self.metrics = sorted(set(view.effective.metrics) | set(found.metrics))
        else:
            chosen = device_type or (types[0] if types else "")
            view = await services.metadata.type_metadata(chosen)
            self.metrics = sorted(view.effective.metrics)
        self._form(view)

    def _form(self, view: DeviceMetadataView) -> None:
        self.scope, self.key = view.scope, view.key
        admin = form_values(MetadataDoc()) | form_values(_admin_layer(view))
        shown = form_values(view.effective)
        self.inputs = {}

        def field(path: str, label: str, classes: str = "min-w-40") -> None:
            box = ui.input(label, value=admin.get(path, "")).classes(classes).props("dense")
            if shown.get(path):
                box.props(f'placeholder="{_attr(shown[path])}" stack-label')
            if not self.can_edit:
                box.props("readonly")
            box.mark(f"field-{path}").props(f"data-testid=field-{path}")
            self.inputs[path] = box

        with self.body:
            ui.label(f"{view.scope} {view.key}").classes("text-lg").mark("metadata-title")
            if view.scope == "device":
                with ui.row().classes("gap-3 flex-wrap"):
                    for name in DEVICE_FIELDS:
                        field(name, _LABELS[name])
            for metric in self.metrics:
                with ui.card().classes("w-full p-2 gap-1").mark(f"metric-{metric}"):
                    ui.label(metric).classes("font-mono text-sm")
                    with ui.row().classes("gap-3 flex-wrap"):
                        for name in METRIC_FIELDS:
                            field(f"metrics.{metric}.{name}", _LABELS[name])
                        for name in RANGES:
                            for end in ("min", "max"):
                                field(f"metrics.{metric}.{name}.{end}", f"{name} {end}", "w-28")
            if self.can_edit:
                with ui.row().classes("gap-2"):
                    ui.button("Save", icon="save", on_click=self.save).mark("metadata-save").props(
                        "data-testid=metadata-save"
                    )
            else:
                ui.label(f"{ADMIN_TIP}.").classes("text-sm opacity-70")

    def _clear_errors(self) -> None:
        for box in self.inputs.values():
            box.props(remove="error error-message")

    def _show_error(self, message: str) -> None:
        path = field_of(message, self.inputs)
        if path is None:
            ui.notify(message, type="negative")
            return
        self.inputs[path].props(f'error error-message="{_attr(message)}"')

    async def save(self) -> None:
        if not self.can_edit:
            ui.notify(f"{ADMIN_TIP}.", type="negative")
            return
        self._clear_errors()
        values = {path: str(box.value or "") for path, box in self.inputs.items()}
        try:
            raw = form_document(values, self.metrics, device=self.scope == "device")
            await self.frame.services.metadata.edit(
                self.scope, self.key, raw, self.frame.principal, session.client_address()
            )
        except ValueError as exc:
            self._show_error(str(exc))
            return
        ui.notify(f"Saved the metadata of {self.scope} {self.key}.", type="positive")


def _admin_layer(view: DeviceMetadataView) -> MetadataDoc:
    layer = view.layers.get("admin")
    return MetadataDoc() if layer is None else parse_document(layer, device=view.scope == "device")


def _attr(text: str) -> str:
    return text.replace('"', "&quot;")
