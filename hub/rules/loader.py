"""Rule files: the packaged `defaults.yaml`, optionally with an operator's file merged over it.

File layout (see `defaults.yaml` for a commented example)::

    version: 1
    default:                      # device types not listed below (and readings without a type)
      offline: {after_s: null, severity: critical}
      rules: {}
    types:
      cnc_spindle:
        offline: {after_s: 120}   # optional; missing means the default section's
        rules:
          spindle_temp_c.threshold: {kind: threshold, metric: spindle_temp_c, crit_high: 85}

An override file has the same layout and is merged per type, per rule key and per field: it
names only what it changes (`{crit_high: 90}`), adds rules and types, and disables a rule or
offline detection with `enabled: false`; `null` unsets a field. A rule whose `kind` changes is
replaced whole. The rule id is `{type}.{key}` (`default.{key}` in the default section).

Per-device overrides take the same syntax under `devices`, keyed by device id, and name the
type they are layered over; a device's rules keep their type's ids, so an override changes a
rule's limits without opening a second alert::

    devices:
      press-07:
        type: hydraulic_press
        rules:
          ram_pressure_bar.threshold: {warn_high: 245}   # over the type's, whatever file set it

A device section is layered over its type's merged section, whatever the order of the files.

Every problem is reported with its file, line, path and reason, all of them at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from hub.rules.model import (
    DeviceRules,
    Direction,
    FlagThreshold,
    Flatline,
    Hysteresis,
    Offline,
    RateOfChange,
    Rule,
    RuleSet,
    Severity,
    Threshold,
    TypeRules,
)
from protocol.models import METRIC_NAME_PATTERN
from protocol.topics import IDENTIFIER_PATTERN

PACKAGED_SOURCE: Final = "hub/rules/defaults.yaml (packaged)"

_TYPE_RE: Final = re.compile(METRIC_NAME_PATTERN)
_DEVICE_RE: Final = re.compile(f"^{IDENTIFIER_PATTERN}$")
_KEY_RE: Final = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_PERCENT_RE: Final = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*%\s*$")
_SCHEMA_CLASS_RE: Final = re.compile(r" or instance of _\w+")

_Path = tuple[str, ...]


class RulesError(ValueError):
    """A rule file is unreadable or invalid; `problems` lists each as 'file:line: path: why'."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid alert rules:\n  " + "\n  ".join(self.problems))


# -- schema ------------------------------------------------------------------------------------


class _Spec(BaseModel):
    # strict: a YAML `yes` must not become 1.0, nor "85" a number.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _ThresholdSpec(_Spec):
    kind: Literal["threshold"]
    metric: str
    enabled: bool = True
    when: str | None = None
    warn_high: float | None = None
    crit_high: float | None = None
    warn_low: float | None = None
    crit_low: float | None = None
    hysteresis: Any = None  # a number or "5%": parsed by _hysteresis for a clear message
    clear_after_s: float = 0.0
    equals: bool | None = None
    severity: Severity | None = None

    def to_rule(self, rule_id: str) -> Rule:
        limits = (self.warn_high, self.crit_high, self.warn_low, self.crit_low)
        if self.equals is not None:
            if any(v is not None for v in limits) or self.hysteresis is not None:
                raise ValueError("a threshold with equals (a flag) takes no limits or hysteresis")
            if self.clear_after_s:
                raise ValueError("a threshold with equals (a flag) takes no clear_after_s")
            return FlagThreshold(
                rule_id, self.metric, self.equals, self.severity or "warning", self.when
            )
        if self.severity is not None:
            raise ValueError(
                "severity applies only with equals; numeric thresholds take it from "
                "warn_*/crit_* limits"
            )
        return Threshold(
            rule_id,
            self.metric,
            warn_high=self.warn_high,
            crit_high=self.crit_high,
            warn_low=self.warn_low,
            crit_low=self.crit_low,
            hysteresis=_hysteresis(self.hysteresis),
            clear_after_s=self.clear_after_s,
            when=self.when,
        )


class _RateSpec(_Spec):
    kind: Literal["rate_of_change"]
    metric: str
    enabled: bool = True
    when: str | None = None
    max_per_s: float
    window_samples: int | None = None
    window_s: float | None = None
    direction: Direction = "rising"
    severity: Severity = "warning"
    hysteresis: Any = None
    clear_after_s: float = 0.0

    def to_rule(self, rule_id: str) -> Rule:
        return RateOfChange(
            rule_id,
            self.metric,
            self.max_per_s,
            window_samples=self.window_samples,
            window_s=self.window_s,
            direction=self.direction,
            severity=self.severity,
            hysteresis=_hysteresis(self.hysteresis),
            clear_after_s=self.clear_after_s,
            when=self.when,
        )


class _FlatlineSpec(_Spec):
    kind: Literal["flatline"]
    metric: str
    enabled: bool = True
    when: str | None = None
    samples: int
    severity: Severity = "warning"

    def to_rule(self, rule_id: str) -> Rule:
        return Flatline(rule_id, self.metric, self.samples, self.severity, self.when)


_RULE_SPEC: Final = TypeAdapter[_ThresholdSpec | _RateSpec | _FlatlineSpec](
    Annotated[_ThresholdSpec | _RateSpec | _FlatlineSpec, Field(discriminator="kind")]
)


class _OfflineSpec(_Spec):
    enabled: bool = True
    after_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    severity: Severity = "critical"


class _SectionSpec(_Spec):
    offline: dict[str, Any] | None = None
    rules: dict[str, dict[str, Any]] | None = None


class _DeviceSectionSpec(_SectionSpec):
    type: str | None = None  # the device type its overrides are layered over


class _FileSpec(_Spec):
    version: Literal[1] = 1
    default: _SectionSpec | None = None
    types: dict[str, _SectionSpec | None] | None = None
    devices: dict[str, _DeviceSectionSpec | None] | None = None


def _hysteresis(value: Any) -> Hysteresis:
    if value is None:
        return Hysteresis()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Hysteresis(float(value))
    if isinstance(value, str) and (match := _PERCENT_RE.match(value)):
        return Hysteresis(float(match.group(1)), percent=True)
    raise ValueError(
        f"hysteresis must be a number (in the metric's unit) or a percentage like '5%', "
        f"got {value!r}"
    )


# -- files -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _File:
    source: str
    spec: _FileSpec
    node: Any  # the composed YAML node tree, for line numbers


def _render(path: Sequence[object]) -> str:
    out = ""
    for part in path:
        text = str(part)
        if isinstance(part, int):
            out += f"[{part}]"
        elif _KEY_RE.match(text) and "." not in text:
            out += f".{text}" if out else text
        else:
            out += f"[{text!r}]"
    return out or "(top level)"


def _line(node: Any, path: Sequence[object]) -> int | None:
    """1-based line of the deepest part of `path` found in the YAML node tree."""
    line = None
    for part in path:
        if not isinstance(node, yaml.MappingNode):
            break
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                line = int(key.start_mark.line) + 1
                node = value
                break
        else:
            break
    return line


def _problem(file: _File | None, path: Sequence[object], why: str, note: str = "") -> str:
    if file is None:
        return f"{_render(path)}: {why}"
    line = _line(file.node, path)
    where = file.source if line is None else f"{file.source}:{line}"
    why = _SCHEMA_CLASS_RE.sub("", why)  # pydantic names our private schema classes
    return f"{where}: {_render(path)}: {why}{note}"


def _duplicates(node: Any, path: _Path, out: list[tuple[_Path, int]]) -> None:
    """PyYAML keeps the last of two equal keys silently; an operator deserves to know."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                out.append(((*path, name), int(key.start_mark.line) + 1))
            seen.add(name)
            _duplicates(value, (*path, name), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _duplicates(item, (*path, str(i)), out)


def _parse(text: str, source: str) -> _File:
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = source if mark is None else f"{source}:{mark.line + 1}:{mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise RulesError([f"{where}: invalid YAML: {problem}"]) from None
    duplicates: list[tuple[_Path, int]] = []
    _duplicates(node, (), duplicates)
    if duplicates:
        raise RulesError(
            [f"{source}:{line}: {_render(path)}: duplicate key" for path, line in duplicates]
        )
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RulesError([f"{source}: the file must be a mapping (version, default, types)"])
    file = _File(source, _FileSpec.model_construct(), node)
    try:
        file.spec = _FileSpec.model_validate(data)
    except ValidationError as exc:
        raise RulesError([_problem(file, e["loc"], e["msg"]) for e in exc.errors()]) from None
    problems: list[str] = []
    for name in file.spec.types or {}:
        if name == "default":
            problems.append(_problem(file, ("types", name), "use the top-level default section"))
        elif not _TYPE_RE.match(name):
            problems.append(
                _problem(file, ("types", name), "a device type is [a-z][a-z0-9_]{0,63}")
            )
    for device_id, device in (file.spec.devices or {}).items():
        if not _DEVICE_RE.match(device_id):
            problems.append(
                _problem(file, ("devices", device_id), f"a device id is {IDENTIFIER_PATTERN}")
            )
        if device is not None and device.type is not None and not _TYPE_RE.match(device.type):
            problems.append(
                _problem(
                    file, ("devices", device_id, "type"), "a device type is [a-z][a-z0-9_]{0,63}"
                )
            )
    for section_path, section in _sections(file.spec):
        for key in (section.rules or {}) if section else {}:
            if not _KEY_RE.match(key):
                problems.append(
                    _problem(
                        file,
                        (*section_path, "rules", key),
                        "a rule key is dot-separated [a-z][a-z0-9_]* parts",
                    )
                )
    if problems:
        raise RulesError(problems)
    return file


def _sections(spec: _FileSpec) -> list[tuple[_Path, _SectionSpec | None]]:
    found: list[tuple[_Path, _SectionSpec | None]] = []
    if spec.default is not None:
        found.append((("default",), spec.default))
    found.extend((("types", name), section) for name, section in (spec.types or {}).items())
    found.extend(
        (("devices", device_id), section) for device_id, section in (spec.devices or {}).items()
    )
    return found


# -- merge and build ---------------------------------------------------------------------------


@dataclass(slots=True)
class _MergedRule:
    fields: dict[str, Any]
    blame: _File  # the file to point at when the merged rule is invalid
    merged: bool = False  # an override changed a packaged rule


@dataclass(slots=True)
class _MergedSection:
    offline: dict[str, Any] | None = None
    offline_blame: _File | None = None
    rules: dict[str, _MergedRule] = field(default_factory=dict)
    device_type: str | None = None  # a device section's: the type it is layered over


def _merge(files: Sequence[_File]) -> dict[_Path, _MergedSection]:
    merged: dict[_Path, _MergedSection] = {("default",): _MergedSection()}
    for file in files:
        for path, section in _sections(file.spec):
            target = merged.setdefault(path, _MergedSection())
            if section is None:
                continue
            if isinstance(section, _DeviceSectionSpec) and section.type is not None:
                target.device_type = section.type
            if section.offline is not None:
                target.offline = {**(target.offline or {}), **section.offline}
                target.offline_blame = file
            for key, fields in (section.rules or {}).items():
                old = target.rules.get(key)
                if old is None or ("kind" in fields and fields["kind"] != old.fields.get("kind")):
                    target.rules[key] = _MergedRule(dict(fields), file)
                else:
                    target.rules[key] = _MergedRule({**old.fields, **fields}, file, merged=True)
    return merged


def _layered(base: _MergedSection, own: _MergedSection, default: _MergedSection) -> _MergedSection:
    """A device's section: its own offline and rules merged over its type's, per rule and per
    field, the way a file merges over the files before it."""
    out = _MergedSection(base.offline, base.offline_blame, dict(base.rules))
    if out.offline is None:
        out.offline, out.offline_blame = default.offline, default.offline_blame
    if own.offline is not None:
        out.offline = {**(out.offline or {}), **own.offline}
        out.offline_blame = own.offline_blame
    for key, item in own.rules.items():
        old = out.rules.get(key)
        if old is None or ("kind" in item.fields and item.fields["kind"] != old.fields.get("kind")):
            out.rules[key] = item
        else:
            out.rules[key] = _MergedRule({**old.fields, **item.fields}, item.blame, merged=True)
    return out


_RulesOf = Callable[[_MergedSection, _Path, str], tuple[Rule, ...]]
_OfflineOf = Callable[[_MergedSection, _Path], Offline | None]


def _devices(
    merged: dict[_Path, _MergedSection],
    rules_of: _RulesOf,
    offline_of: _OfflineOf,
    problems: list[str],
) -> dict[str, DeviceRules]:
    """Each device section layered over its type's (the default section's for a type no file
    lists), keeping the type's rule ids."""
    default_section = merged[("default",)]
    devices: dict[str, DeviceRules] = {}
    for path, section in merged.items():
        if path[0] != "devices":
            continue
        device_type = section.device_type
        if device_type is None:
            problems.append(
                _problem(
                    None,
                    (*path, "type"),
                    "a device's overrides name its type (type: <device type>)",
                )
            )
            continue
        base = merged.get(("types", device_type))
        prefix = device_type if base is not None else "default"
        own = _layered(base or default_section, section, default_section)
        devices[path[1]] = DeviceRules(
            device_type, TypeRules(rules_of(own, path, prefix), offline_of(own, path))
        )
    return devices


def _build(files: Sequence[_File]) -> RuleSet:
    problems: list[str] = []
    merged = _merge(files)
    default_section = merged[("default",)]

    def offline_of(section: _MergedSection, path: _Path) -> Offline | None:
        raw, blame = section.offline, section.offline_blame
        if raw is None:
            raw, blame = default_section.offline or {}, default_section.offline_blame
        try:
            spec = _OfflineSpec.model_validate(raw)
        except ValidationError as exc:
            problems.extend(
                _problem(blame, (*path, "offline", *e["loc"]), e["msg"]) for e in exc.errors()
            )
            return None
        return Offline(spec.after_s, spec.severity) if spec.enabled else None

    def rules_of(section: _MergedSection, path: _Path, prefix: str) -> tuple[Rule, ...]:
        rules: list[Rule] = []
        for key, item in section.rules.items():
            rule_path = (*path, "rules", key)
            note = " (after merging over the packaged defaults)" if item.merged else ""
            try:
                spec = _RULE_SPEC.validate_python(item.fields)
            except ValidationError as exc:
                for e in exc.errors():
                    loc = list(e["loc"])
                    if loc and loc[0] == item.fields.get("kind"):
                        loc = loc[1:]  # the union's tag, not a field
                    problems.append(_problem(item.blame, (*rule_path, *loc), e["msg"], note))
                continue
            if not spec.enabled:
                continue
            try:
                rules.append(spec.to_rule(f"{prefix}.{key}"))
            except ValueError as exc:
                problems.append(_problem(item.blame, rule_path, str(exc), note))
        return tuple(rules)

    default = TypeRules(
        rules_of(default_section, ("default",), "default"),
        offline_of(default_section, ("default",)),
    )
    types: dict[str, TypeRules] = {}
    for path, section in merged.items():
        if path[0] != "types":
            continue
        types[path[1]] = TypeRules(rules_of(section, path, path[1]), offline_of(section, path))
    devices = _devices(merged, rules_of, offline_of, problems)
    if problems:
        raise RulesError(problems)
    return RuleSet(types, default, devices)


def packaged_rules_text() -> str:
    """The text of the packaged defaults.yaml (to show an operator what to override)."""
    return resources.files("hub.rules").joinpath("defaults.yaml").read_text(encoding="utf-8")


def parse_rules(text: str, *, source: str, override: tuple[str, str] | None = None) -> RuleSet:
    """Rules from YAML text, optionally with `override` = (text, source) merged over it."""
    files = [_parse(text, source)]
    if override is not None:
        files.append(_parse(*override))
    return _build(files)


def parse_layers(layers: Sequence[tuple[str, str]]) -> RuleSet:
    """Rules from (text, source) layers, each merged over the ones before it (the packaged
    defaults first, then HUB_RULES_FILE, then the dashboard's edits)."""
    return _build([_parse(text, source) for text, source in layers])


def load_rules(override_path: Path | None = None) -> RuleSet:
    """The packaged default rules, with the operator's file at `override_path` merged over them."""
    override = None
    if override_path is not None:
        try:
            override = (override_path.read_text(encoding="utf-8"), str(override_path))
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise RulesError([f"{override_path}: cannot read: {reason}"]) from None
    return parse_rules(packaged_rules_text(), source=PACKAGED_SOURCE, override=override)
