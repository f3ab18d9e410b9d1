"""What the rules page shows and sends, as pure functions: the fields a rule's form edits, a
value as text, what an admin typed as the values of an edit, and which form field each problem
the rules model reports is about."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from hub.rules.edits import OFFLINE, EffectiveRule, Scope

# The fields each kind of rule offers in the form (the rest stay as the files have them).
FORM_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "threshold": ("warn_high", "crit_high", "warn_low", "crit_low", "hysteresis", "clear_after_s"),
    "flag": ("severity",),
    "rate_of_change": ("max_per_s", "hysteresis", "clear_after_s"),
    "flatline": ("samples",),
    OFFLINE: ("after_s", "severity"),
}
LABELS: Final = {
    "warn_high": "Warning above",
    "crit_high": "Critical above",
    "warn_low": "Warning below",
    "crit_low": "Critical below",
    "hysteresis": "Hysteresis (number or %)",
    "clear_after_s": "Hold before clearing (s)",
    "max_per_s": "Max change per second",
    "samples": "Identical samples",
    "severity": "Severity",
    "after_s": "Offline after (s)",
}
# How a rule's row shows each value ("{}" is the value).
SHORT: Final = {
    "metric": "{}",
    "warn_high": "warn above {}",
    "crit_high": "crit above {}",
    "warn_low": "warn below {}",
    "crit_low": "crit below {}",
    "hysteresis": "hysteresis {}",
    "clear_after_s": "hold {} s",
    "max_per_s": "max {}/s",
    "samples": "{} identical samples",
    "severity": "{}",
    "after_s": "after {} s",
}
_FIELD_RE: Final = re.compile(r"\b(" + "|".join(sorted(LABELS, key=len, reverse=True)) + r")\b")


def form_kind(rule: EffectiveRule) -> str:
    if rule.key == OFFLINE:
        return OFFLINE
    kind = str(rule.plain().get("kind", "threshold"))
    if kind == "threshold" and rule.plain().get("equals") is not None:
        return "flag"
    return kind


def form_fields(rule: EffectiveRule) -> tuple[str, ...]:
    return FORM_FIELDS.get(form_kind(rule), ())


def shown(value: Any) -> str:
    """A value as the page shows it: blank for unset, numbers without a needless '.0'."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value
    return json.dumps(value)


def typed(text: str | None) -> Any:
    """What an admin typed, as the value to send: blank unsets, a number is a number, anything
    else goes as typed, for the rules model to refuse by name."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text else number


def changed_fields(
    rule: EffectiveRule, typed_values: Mapping[str, str | None], enabled: bool
) -> dict[str, Any]:
    """The fields whose typed value differs from the rule's: only those go into the edit."""
    current = rule.plain()
    out: dict[str, Any] = {}
    for name, text in typed_values.items():
        value = typed(text)
        if shown(value) != shown(current.get(name)):
            out[name] = value
    if enabled != rule.enabled:
        out["enabled"] = enabled
    return out


def problems_by_field(
    problems: Sequence[str], fields: Sequence[str]
) -> tuple[dict[str, list[str]], list[str]]:
    """Each problem under every form field it names (shown next to that field), and those that
    name none of them (shown above the form)."""
    by_field: dict[str, list[str]] = {}
    general: list[str] = []
    for problem in problems:
        named = [f for f in dict.fromkeys(_FIELD_RE.findall(problem)) if f in fields]
        for name in named:
            by_field.setdefault(name, []).append(_short(problem))
        if not named:
            general.append(problem)
    return by_field, general


def _short(problem: str) -> str:
    # "types.x.rules['k'].warn_high: Input should be..." -> "Input should be..."
    head, sep, tail = problem.partition(": ")
    return tail if sep and ("rules[" in head or head.startswith(("types", "devices"))) else problem


def scope_options(rules: Sequence[EffectiveRule]) -> dict[str, str]:
    """Scope key -> label, the types first, then each device with overrides."""
    scopes = dict.fromkeys(r.scope for r in rules)
    return {scope_key(s): s.label() for s in scopes}


def scope_key(scope: Scope) -> str:
    return f"{scope.device_type or ''}/{scope.device_id or ''}"


def parse_scope_key(key: str) -> Scope:
    device_type, _, device_id = key.partition("/")
    return Scope(device_type or None, device_id or None)


def origin_text(rule: EffectiveRule) -> str:
    """Where the rule's values come from, e.g. 'default; edit: warn_high; device: enabled'."""
    parts = ["default"] if any(v.origin == "default" for v in rule.fields.values()) else []
    for origin in ("file", "edit"):
        names = [n for n, v in rule.fields.items() if v.origin == origin and not v.device]
        if names:
            parts.append(f"{origin}: {', '.join(names)}")
    own = [n for n, v in rule.fields.items() if v.device]
    if own:
        parts.append(f"device: {', '.join(own)}")
    return "; ".join(parts)
