"""Rule edits made in the dashboard: a third layer over the packaged defaults and HUB_RULES_FILE.

The edits are one override document in the rule files' layout (`hub.rules.loader`), kept whole
per version (`hub.storage.rule_versions`). Pure: applying a change to that document, building
the rules of the three layers (validated by the loader, exactly as a file is), where each
effective value comes from, and what changed between two documents.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from hub.rules.loader import PACKAGED_SOURCE, RulesError, packaged_rules_text, parse_layers
from hub.rules.model import RuleSet

Origin = Literal["default", "file", "edit"]
EDIT_SOURCE: Final = "edit"
OFFLINE: Final = "offline"  # the key the offline section has in views and diffs
# The loader points at a line of the edit's rendered text, which nobody has seen: drop it.
_EDIT_LINE_RE: Final = re.compile(rf"^{EDIT_SOURCE}(:\d+)*: ")

Document = dict[str, Any]


def empty_document() -> Document:
    return {"version": 1}


@dataclass(frozen=True, slots=True)
class Seed:
    """The layers under the edits: the packaged defaults and the operator's file, as text."""

    layers: tuple[tuple[Origin, str, str], ...]  # (origin, text, source)
    # Parsed once: the rules page reads them at every view.
    parsed: tuple[tuple[Origin, Document], ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        parsed = tuple((origin, yaml.safe_load(text) or {}) for origin, text, _ in self.layers)
        object.__setattr__(self, "parsed", parsed)

    def documents(self) -> list[tuple[Origin, Document]]:
        return [(origin, copy.deepcopy(document)) for origin, document in self.parsed]


def load_seed(rules_file: Path | None = None) -> Seed:
    """The packaged defaults and HUB_RULES_FILE (RulesError if the file cannot be read, or if
    it is not a valid rules file: every problem, with its line)."""
    layers: list[tuple[Origin, str, str]] = [("default", packaged_rules_text(), PACKAGED_SOURCE)]
    if rules_file is not None:
        try:
            layers.append(("file", rules_file.read_text(encoding="utf-8"), str(rules_file)))
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise RulesError([f"{rules_file}: cannot read: {reason}"]) from None
    parse_layers([(text, source) for _, text, source in layers])
    return Seed(tuple(layers))


def build_rules(seed: Seed, edits: Mapping[str, Any]) -> RuleSet:
    """The rules of the seed with `edits` over it, checked as a rule file is: RulesError lists
    every problem, each naming its path (types.<type>.rules[<key>]: <field> ...)."""
    text = json.dumps(edits, indent=1)
    try:
        return parse_layers([(t, source) for _, t, source in seed.layers] + [(text, EDIT_SOURCE)])
    except RulesError as exc:
        raise RulesError([_EDIT_LINE_RE.sub("", p) for p in exc.problems]) from None


# -- changes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleChange:
    """New values for some fields of one rule (None unsets a field), of a device type (None:
    the default section) or, with `device_id`, of one device of that type."""

    rule: str
    fields: Mapping[str, Any]
    device_type: str | None = None
    device_id: str | None = None

    def validate(self) -> None:
        if not self.fields:
            raise ValueError("fields: give at least one field to change")
        if self.device_id is not None and self.device_type is None:
            raise ValueError("device_type: a device's override names the device's type")
        for name in self.fields:
            if name in ("kind", "metric"):
                raise ValueError(f"fields.{name}: a rule's {name} cannot be edited")


def apply_changes(edits: Mapping[str, Any], changes: Sequence[RuleChange]) -> Document:
    """A new edits document: `edits` with each change merged in (the input is not touched)."""
    out: Document = copy.deepcopy(dict(edits)) or empty_document()
    out.setdefault("version", 1)
    for change in changes:
        change.validate()
        if change.device_id is not None:
            section = out.setdefault("devices", {}).setdefault(change.device_id, {})
            section["type"] = change.device_type
        elif change.device_type is None:
            section = out.setdefault("default", {})
        else:
            section = out.setdefault("types", {}).setdefault(change.device_type, {})
        if change.rule == OFFLINE:
            section.setdefault("offline", {}).update(change.fields)
        else:
            section.setdefault("rules", {}).setdefault(change.rule, {}).update(change.fields)
    return out


# -- where each value comes from ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """A section of the rules: the default one, a device type's, or one device's."""

    device_type: str | None = None
    device_id: str | None = None

    def label(self) -> str:
        if self.device_id is not None:
            return f"device {self.device_id} ({self.device_type})"
        return self.device_type or "default"


@dataclass(frozen=True, slots=True)
class Value:
    value: Any
    origin: Origin
    device: bool = False  # set by the device's own override, not its type's


@dataclass(slots=True)
class EffectiveRule:
    """One rule of one scope as it applies: each field set by some layer, with that layer."""

    scope: Scope
    key: str  # the rule's key in its section, or OFFLINE
    fields: dict[str, Value] = field(default_factory=dict)

    @property
    def rule_id(self) -> str:
        return f"{self.scope.device_type or 'default'}.{self.key}"

    @property
    def enabled(self) -> bool:
        value = self.fields.get("enabled")
        return value is None or value.value is not False

    def plain(self) -> dict[str, Any]:
        return {name: v.value for name, v in self.fields.items()}


_Section = dict[str, dict[str, Value]]  # key -> field -> value


def _value(fields: Mapping[str, Value], name: str) -> Any:
    found = fields.get(name)
    return None if found is None else found.value


def _merge_section(target: _Section, section: Mapping[str, Any], origin: Origin) -> None:
    for key, fields in (section.get("rules") or {}).items():
        old = target.get(key)
        if old is None or ("kind" in fields and fields["kind"] != _value(old, "kind")):
            target[key] = {}  # a new rule, or one whose kind changes: replaced whole
        target[key].update({name: Value(v, origin) for name, v in fields.items()})
    if section.get("offline") is not None:
        target.setdefault(OFFLINE, {}).update(
            {name: Value(v, origin) for name, v in section["offline"].items()}
        )


def effective_rules(seed: Seed, edits: Mapping[str, Any]) -> list[EffectiveRule]:
    """Every rule of every section as the layers make it, types and devices by name. Assumes
    the layers build (see `build_rules`)."""
    layers = [*seed.documents(), ("edit", dict(edits))]
    sections: dict[Scope, _Section] = {Scope(): {}}
    device_types: dict[str, str] = {}
    own: dict[str, _Section] = {}
    for origin, document in layers:
        if document.get("default"):
            _merge_section(sections[Scope()], document["default"], origin)
        for name, section in (document.get("types") or {}).items():
            _merge_section(sections.setdefault(Scope(name), {}), section or {}, origin)
        for device_id, section in (document.get("devices") or {}).items():
            section = section or {}
            if section.get("type"):
                device_types[device_id] = section["type"]
            _merge_section(own.setdefault(device_id, {}), section, origin)
    default_offline = sections[Scope()].get(OFFLINE, {})
    for scope, section in sections.items():
        if scope.device_type is not None and OFFLINE not in section:
            section[OFFLINE] = dict(default_offline)
    for device_id, section in own.items():
        device_type = device_types.get(device_id)
        base = sections.get(Scope(device_type), sections[Scope()])
        merged = {key: dict(fields) for key, fields in base.items()}
        for key, fields in section.items():
            if key not in merged or (
                "kind" in fields and _value(fields, "kind") != _value(merged[key], "kind")
            ):
                merged[key] = {}
            merged[key].update(
                {n: Value(v.value, v.origin, device=True) for n, v in fields.items()}
            )
        sections[Scope(device_type, device_id)] = merged
    ordered = sorted(sections, key=lambda s: (s.device_id is not None, s.label()))
    return [
        EffectiveRule(scope, key, fields)
        for scope in ordered
        for key, fields in sorted(sections[scope].items(), key=lambda kv: (kv[0] != OFFLINE, kv[0]))
    ]


# -- comparing two versions --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """One field of one rule that differs: None for a field not set on that side."""

    scope: str  # Scope.label()
    rule: str  # the rule's key, or OFFLINE
    field: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.scope} {self.rule}: {self.field} {_shown(self.old)} -> {_shown(self.new)}"


def _shown(value: Any) -> str:
    return "(unset)" if value is None else json.dumps(value)


_Key = tuple[str, str, str]  # (scope label, rule key, field)


def _flat(rules: list[EffectiveRule]) -> tuple[dict[_Key, Any], set[_Key], dict[str, str]]:
    """Every field's value; the fields worth comparing (a device's own, every type's: what a
    device inherits shows under its type); each device scope's type scope."""
    values: dict[_Key, Any] = {}
    compared: set[_Key] = set()
    types: dict[str, str] = {}
    for r in rules:
        scope = r.scope.label()
        if r.scope.device_id is not None:
            types[scope] = Scope(r.scope.device_type).label()
        for name, value in r.fields.items():
            values[(scope, r.key, name)] = value.value
            if value.device or r.scope.device_id is None:
                compared.add((scope, r.key, name))
    return values, compared, types


def diff_documents(seed: Seed, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldDiff]:
    """Which field of which rule the move from `old` to `new` edits changes, effective values
    compared (an edit restating a file's value changes nothing). A device's field is compared
    with what the device had on the other side, its type's value if it had no override."""
    (before, keys_before, types_before) = _flat(effective_rules(seed, old))
    (after, keys_after, types_after) = _flat(effective_rules(seed, new))
    types = {**types_before, **types_after}

    def value(values: dict[_Key, Any], key: _Key) -> Any:
        scope, rule, name = key
        if key not in values and scope in types:
            return values.get((types[scope], rule, name))
        return values.get(key)

    out = []
    for key in sorted(keys_before | keys_after):
        old_value, new_value = value(before, key), value(after, key)
        if old_value != new_value:
            out.append(FieldDiff(*key, old_value, new_value))
    return out
