"""`/rules`: every alert rule per device type and per device override, where each value comes
from, and (admins) a form to change thresholds, hysteresis, hold times and enable or disable a
rule; the history of versions, the difference between two, and rollback.

An edit is checked by the same model as `hub/rules/defaults.yaml` (`hub.web.rules_service`): a
refused one shows each problem next to the field it names and stores nothing. Everyone signed
in may read the rules; the form and rollback are for admins, checked again on the server at the
moment of the click. A saved version reaches every worker within HUB_RULES_POLL_S.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from hub.rules.edits import EffectiveRule, FieldDiff, RuleChange, Scope
from hub.storage.rule_versions import RuleVersion, VersionConflict
from hub.web.container import WebServices
from hub.web.model import can_administer
from hub.web.pages import session
from hub.web.pages.layout import PageFrame, page_frame
from hub.web.rules_service import MAX_COMMENT_CHARS, RuleEditError
from hub.web.views.rules import (
    LABELS,
    SHORT,
    changed_fields,
    form_fields,
    origin_text,
    parse_scope_key,
    problems_by_field,
    scope_key,
    scope_options,
    shown,
)
from hub.web.views.times import format_time

__all__ = ["RulesPage", "register"]

HISTORY_SIZE: Final = 20
_HISTORY_COLUMNS: Final = [
    {"name": "version", "label": "Version", "field": "version", "align": "left"},
    {"name": "at", "label": "When", "field": "at", "align": "left"},
    {"name": "author", "label": "Who", "field": "author", "align": "left"},
    {"name": "comment", "label": "Comment", "field": "comment", "align": "left"},
    {"name": "changes", "label": "What changed", "field": "changes", "align": "left"},
]
_MAX_CHANGES_SHOWN: Final = 5


def _tid(element: Any, name: str) -> Any:
    """Marked for the in-process tests and tagged for the browser tests."""
    return element.mark(name).props(f"data-testid={name}")


def register(services: WebServices) -> None:
    @ui.page("/rules", title="Rules · IoT Hub")
    async def rules_page(request: Request) -> RedirectResponse | None:
        principal = await session.current_principal(services.auth)
        if principal is None:
            return session.login_redirect(request)
        frame = await page_frame(services, principal, "rules")
        await RulesPage(frame).build()
        return None


class RulesPage:
    def __init__(self, frame: PageFrame) -> None:
        self.frame = frame
        self.admin = can_administer(frame.principal.role)
        self.version = 0
        self.rules: list[EffectiveRule] = []
        self.scope = Scope("cnc_spindle")
        self.editing: EffectiveRule | None = None

    async def build(self) -> None:
        with self.frame.content:
            with ui.row().classes("w-full items-end gap-3 flex-wrap"):
                self.version_label = _tid(
                    ui.label().classes("text-lg font-medium"), "rules-version"
                )
                self.scope_select = _tid(
                    ui.select({}, label="Device type or device", on_change=self._pick_scope)
                    .props("dense options-dense")
                    .classes("w-72"),
                    "rules-scope",
                )
                if self.admin:
                    self.device_input = _tid(
                        ui.input("Override for device id").props("dense maxlength=64"),
                        "rules-device-id",
                    )
                    _tid(
                        ui.button("Override", icon="add", on_click=self._add_device).props(
                            "flat dense"
                        ),
                        "rules-device-add",
                    )
            if not self.admin:
                _tid(
                    ui.label("Read-only: only administrators edit rules.").classes(
                        "text-sm opacity-70"
                    ),
                    "rules-read-only",
                )
            self.list = ui.column().classes("w-full gap-1")
            self._build_history()
            if self.admin:
                self._build_dialogs()
        await self.refresh()
        await self.refresh_history()

    # -- the rules --------------------------------------------------------------------------

    async def refresh(self) -> None:
        view = await self.frame.services.rules.view()
        self.version, self.rules = view.version, view.rules
        self.version_label.text = f"Rules in force: version {view.version}"
        options = scope_options(self.rules)
        key = scope_key(self.scope)
        if key not in options:
            options[key] = self.scope.label()
        self.scope_select.options = options
        self.scope_select.value = key
        self.scope_select.update()
        self._render()

    def _scope_rules(self) -> list[EffectiveRule]:
        mine = [r for r in self.rules if r.scope == self.scope]
        if mine or self.scope.device_id is None:
            return mine
        # A device without overrides yet: its type's rules, which an edit overrides for it.
        typed = Scope(self.scope.device_type)
        return [EffectiveRule(self.scope, r.key, r.fields) for r in self.rules if r.scope == typed]

    def _render(self) -> None:
        self.list.clear()
        with self.list:
            for rule in self._scope_rules():
                self._rule_row(rule)

    def _rule_row(self, rule: EffectiveRule) -> None:
        values = rule.plain()
        slug = rule.key.replace(".", "-")
        with (
            _tid(ui.card().classes("w-full p-2"), f"rule-{slug}"),
            ui.row().classes("w-full items-center gap-3 flex-wrap"),
        ):
            ui.label(rule.key).classes("font-medium min-w-[16rem]")
            state = "enabled" if rule.enabled else "disabled"
            _tid(
                ui.badge(state, color="positive" if rule.enabled else "grey"),
                f"rule-state-{slug}",
            )
            if values.get("kind"):
                ui.badge(str(values["kind"]), color="grey-7").props("outline")
            for name in ("metric", *form_fields(rule)):
                if values.get(name) is not None:
                    text = SHORT[name].format(shown(values[name]))
                    _tid(ui.label(text).classes("text-sm iot-mono"), f"rule-{slug}-{name}")
            ui.space()
            ui.label(origin_text(rule)).classes("text-xs opacity-60")
            if self.admin:
                _tid(
                    ui.button("Edit", icon="edit", on_click=lambda r=rule: self._open(r)).props(
                        "flat dense"
                    ),
                    f"rule-edit-{slug}",
                )

    async def _pick_scope(self) -> None:
        value = self.scope_select.value
        if isinstance(value, str):
            self.scope = parse_scope_key(value)
            self._render()

    async def _add_device(self) -> None:
        device_id = (self.device_input.value or "").strip()
        if not device_id or self.scope.device_type is None:
            ui.notify("Pick a device type, then type the device id", type="warning")
            return
        self.scope = Scope(self.scope.device_type, device_id)
        await self.refresh()

    # -- the form ---------------------------------------------------------------------------

    def _build_dialogs(self) -> None:
        with ui.dialog() as self.dialog, ui.card().classes("w-[32rem] max-w-[95vw]"):
            self.dialog_title = ui.label().classes("text-lg font-medium")
            self.general_error = _tid(ui.label().classes("text-negative text-sm"), "rule-error")
            self.enabled = _tid(ui.switch("Enabled"), "rule-enabled")
            self.inputs: dict[str, ui.input] = {}
            self.errors: dict[str, ui.label] = {}
            for name, label in LABELS.items():
                with ui.column().classes("w-full gap-0") as box:
                    self.inputs[name] = _tid(
                        ui.input(label).props("dense maxlength=32").classes("w-full"),
                        f"rule-field-{name}",
                    )
                    self.errors[name] = _tid(
                        ui.label().classes("text-negative text-xs"), f"rule-error-{name}"
                    )
                box.bind_visibility_from(self.inputs[name], "visible")
            self.comment = _tid(
                ui.textarea("Comment (optional)")
                .props(f"maxlength={MAX_COMMENT_CHARS} autogrow")
                .classes("w-full"),
                "rule-comment",
            )
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=self.dialog.close).props("flat")
                _tid(ui.button("Save", on_click=self._save).props("color=primary"), "rule-save")
        with ui.dialog() as self.rollback_dialog, ui.card():
            self.rollback_title = ui.label().classes("text-lg font-medium")
            ui.label("A rollback saves a new version with the older one's edits.").classes(
                "text-sm"
            )
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=self.rollback_dialog.close).props("flat")
                _tid(
                    ui.button("Roll back", on_click=self._rollback).props("color=negative"),
                    "rollback-confirm",
                )

    def _open(self, rule: EffectiveRule) -> None:
        self.editing = rule
        self.dialog_title.text = f"{rule.scope.label()}: {rule.key}"
        values = rule.plain()
        fields = form_fields(rule)
        for name, box in self.inputs.items():
            box.set_visibility(name in fields)
            box.value = shown(values.get(name))
            self.errors[name].text = ""
        self.enabled.value = rule.enabled
        self.general_error.text = ""
        self.comment.value = ""
        self.dialog.open()

    async def _save(self) -> None:
        rule = self.editing
        principal = await session.current_principal(self.frame.services.auth)
        if rule is None or principal is None or not can_administer(principal.role):
            self.general_error.text = "Only administrators edit rules."
            return
        for label in self.errors.values():
            label.text = ""
        fields = form_fields(rule)
        typed_values = {name: self.inputs[name].value for name in fields}
        changes = changed_fields(rule, typed_values, bool(self.enabled.value))
        if not changes:
            self.general_error.text = "Nothing changed."
            return
        change = RuleChange(rule.key, changes, rule.scope.device_type, rule.scope.device_id)
        try:
            row = await self.frame.services.rules.edit(
                [change],
                principal,
                comment=self.comment.value,
                base=self.version,
                client=session.client_address(),
            )
        except RuleEditError as exc:
            by_field, general = problems_by_field(exc.problems, (*fields, "enabled"))
            for name, problems in by_field.items():
                if name in self.errors:
                    self.errors[name].text = "; ".join(problems)
            self.general_error.text = "; ".join(general) or "Not saved: see the fields below."
            return
        except VersionConflict as exc:
            self.general_error.text = f"Not saved: {exc}. Close and edit again."
            await self.refresh()
            return
        self.dialog.close()
        ui.notify(f"Saved as version {row.version}", type="positive")
        await self.refresh()
        await self.refresh_history()

    # -- history ----------------------------------------------------------------------------

    def _build_history(self) -> None:
        ui.label("History").classes("text-lg font-medium mt-4")
        self.history_table = _tid(
            ui.table(columns=_HISTORY_COLUMNS, rows=[], row_key="version")
            .props("dense flat bordered wrap-cells hide-pagination")
            .classes("w-full"),
            "rules-history",
        )
        self.history_table.pagination = {"rowsPerPage": 0}
        with ui.row().classes("items-end gap-3"):
            self.diff_from = _tid(
                ui.select({0: "0 (files only)"}, value=0, label="Compare").classes("w-40"),
                "diff-from",
            )
            self.diff_to = _tid(
                ui.select({0: "0 (files only)"}, value=0, label="with").classes("w-40"),
                "diff-to",
            )
            _tid(ui.button("Compare", on_click=self._compare).props("flat"), "diff-show")
            if self.admin:
                _tid(
                    ui.button(
                        "Roll back to the compared version", on_click=self._ask_rollback
                    ).props("flat color=negative"),
                    "rollback",
                )
        self.diff_list = _tid(ui.column().classes("w-full gap-0 iot-mono text-sm"), "rules-diff")

    async def refresh_history(self) -> None:
        history = await self.frame.services.rules.history_with_changes(HISTORY_SIZE)
        versions = [v for v, _ in history]
        self.history_table.rows = [self._history_row(v, changes) for v, changes in history]
        self.history_table.update()
        options = {0: "0 (files only)", **{v.version: str(v.version) for v in versions}}
        for select in (self.diff_from, self.diff_to):
            select.options = options
            select.update()
        if versions:
            self.diff_from.value = versions[1].version if len(versions) > 1 else 0
            self.diff_to.value = versions[0].version

    def _history_row(self, v: RuleVersion, changes: list[FieldDiff]) -> dict[str, Any]:
        shown_changes = "; ".join(str(c) for c in changes[:_MAX_CHANGES_SHOWN])
        if len(changes) > _MAX_CHANGES_SHOWN:
            shown_changes += f"; and {len(changes) - _MAX_CHANGES_SHOWN} more"
        comment = v.comment or ""
        if v.rollback_of is not None and f"version {v.rollback_of}" not in comment:
            comment = f"{comment} (rollback to version {v.rollback_of})".strip()
        return {
            "version": v.version,
            "at": format_time(v.created_at, self.frame.tz),
            "author": v.author,
            "comment": comment,
            "changes": shown_changes or "no change in effect",
        }

    async def _compare(self) -> None:
        old, new = int(self.diff_from.value or 0), int(self.diff_to.value or 0)
        changes = await self.frame.services.rules.diff(old, new)
        self.diff_list.clear()
        with self.diff_list:
            if not changes:
                ui.label(f"No difference between version {old} and version {new}.")
                return
            for change in changes:
                ui.label(str(change))

    def _ask_rollback(self) -> None:
        self.rollback_title.text = f"Roll back to version {int(self.diff_from.value or 0)}?"
        self.rollback_dialog.open()

    async def _rollback(self) -> None:
        target = int(self.diff_from.value or 0)
        principal = await session.current_principal(self.frame.services.auth)
        if principal is None or not can_administer(principal.role):
            ui.notify("Only administrators roll back rules", type="negative")
            return
        try:
            row = await self.frame.services.rules.rollback(
                target, principal, client=session.client_address()
            )
        except (RuleEditError, VersionConflict) as exc:
            ui.notify(f"Not rolled back: {exc}", type="negative", multi_line=True)
            return
        self.rollback_dialog.close()
        if row is not None:
            ui.notify(f"Rolled back to version {target} as version {row.version}")
        await self.refresh()
        await self.refresh_history()
