"""Alert rules: the rule model, the YAML loader and the alert engine. Pure: no I/O but the loader.

The alerts agent feeds every reading, heartbeat, status message and clock tick into an
`AlertEngine` built from `load_rules(settings.rules_file)`, and persists and publishes the
`AlertTransition`s it returns.
"""

from hub.rules.engine import AlertEngine
from hub.rules.loader import (
    PACKAGED_SOURCE,
    RulesError,
    load_rules,
    packaged_rules_text,
    parse_layers,
    parse_rules,
)
from hub.rules.model import (
    BUFFER_RUNWAY,
    DEVICE_OFFLINE,
    GATEWAY_OFFLINE,
    AlertTransition,
    DeviceRules,
    Direction,
    FlagThreshold,
    Flatline,
    Hysteresis,
    Offline,
    OpenAlert,
    RateOfChange,
    Rule,
    RuleSet,
    Severity,
    Threshold,
    TransitionKind,
    TypeRules,
    severity_rank,
)

__all__ = [
    "BUFFER_RUNWAY",
    "DEVICE_OFFLINE",
    "GATEWAY_OFFLINE",
    "PACKAGED_SOURCE",
    "AlertEngine",
    "AlertTransition",
    "DeviceRules",
    "Direction",
    "FlagThreshold",
    "Flatline",
    "Hysteresis",
    "Offline",
    "OpenAlert",
    "RateOfChange",
    "Rule",
    "RuleSet",
    "RulesError",
    "Severity",
    "Threshold",
    "TransitionKind",
    "TypeRules",
    "load_rules",
    "packaged_rules_text",
    "parse_layers",
    "parse_rules",
    "severity_rank",
]
