"""MQTT topic ACLs in Mosquitto's `acl_file` format: a parser and a matcher, no I/O.

    # comment
    topic read plant/+/+/status          <- before any `user` line: anonymous clients
    user press-01
    topic write plant/site-1/press-01/#
    pattern write plant/+/%u/#           <- every client, %u = username, %c = client id

Access is `read`, `write`, `readwrite` (the default when left out) or `deny` (which wins over any
grant). As in Mosquitto, `%u` and `%c` must fill a whole topic level, and a client whose username
or client id contains `+`, `#` or `/` never matches a pattern that substitutes it, so a name
cannot smuggle a wildcard into its own grants.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

Access = Literal["read", "write"]
_ACCESS = {
    "read": frozenset({"read"}),
    "write": frozenset({"write"}),
    "readwrite": frozenset({"read", "write"}),
    "deny": frozenset(),
}
_SUBSTITUTIONS = ("%u", "%c")


class AclSyntaxError(ValueError):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line
        self.problem = problem


@dataclass(frozen=True, slots=True)
class AclRule:
    filter: str
    access: frozenset[str]  # empty = deny
    line: int


@dataclass(frozen=True, slots=True)
class AclRules:
    anonymous: tuple[AclRule, ...] = ()
    users: dict[str, tuple[AclRule, ...]] = field(default_factory=dict)
    patterns: tuple[AclRule, ...] = ()

    def allows_publish(self, username: str | None, client_id: str, topic: str) -> bool:
        return self._allows(username, client_id, "write", topic, subscription=False)

    def allows_receive(self, username: str | None, client_id: str, topic: str) -> bool:
        return self._allows(username, client_id, "read", topic, subscription=False)

    def allows_subscribe(self, username: str | None, client_id: str, topic_filter: str) -> bool:
        """Allowed when a read grant covers every topic the subscription can match. A deny
        rule refuses it only when it covers the whole subscription; otherwise the denied topics
        are held back at delivery (`allows_receive`), as Mosquitto does."""
        return self._allows(username, client_id, "read", topic_filter, subscription=True)

    def _allows(
        self,
        username: str | None,
        client_id: str,
        access: Access,
        subject: str,
        *,
        subscription: bool,
    ) -> bool:
        match = filter_covers if subscription else topic_matches
        granted = False
        for acl_filter, rule in self._filters(username, client_id):
            if rule.access and (granted or access not in rule.access):
                continue  # nothing this rule could change
            if match(acl_filter, subject):
                if not rule.access:
                    return False  # deny wins over any grant, wherever it stands
                granted = True
        return granted

    def _filters(self, username: str | None, client_id: str) -> Iterator[tuple[str, AclRule]]:
        own = self.anonymous if username is None else self.users.get(username, ())
        for rule in own:
            yield rule.filter, rule
        for rule in self.patterns:
            filter_ = substitute(rule.filter, username, client_id)
            if filter_ is not None:
                yield filter_, rule


def substitute(pattern: str, username: str | None, client_id: str) -> str | None:
    """The pattern with %u and %c filled in, or None when it cannot apply to this client."""
    levels = pattern.split("/")
    for i, level in enumerate(levels):
        if level == "%u":
            value = username
        elif level == "%c":
            value = client_id
        else:
            continue
        if not value or any(c in value for c in "+#/"):
            return None
        levels[i] = value
    return "/".join(levels)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT 3.1.1 section 4.7: does `topic` (no wildcards) match `topic_filter`?"""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False  # MQTT-4.7.2-1: wildcards at the first level do not match $ topics
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True  # also matches the parent level itself (MQTT-4.7.1-2)
        if i >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[i]:
            return False
    return len(filter_levels) == len(topic_levels)


def filter_covers(acl_filter: str, sub_filter: str) -> bool:
    """Does every topic matched by `sub_filter` also match `acl_filter`?"""
    if sub_filter.startswith("$") and acl_filter[:1] in ("+", "#"):
        return False  # MQTT-4.7.2-1
    acl_levels = acl_filter.split("/")
    sub_levels = sub_filter.split("/")
    for i, level in enumerate(acl_levels):
        if level == "#":
            return True
        if i >= len(sub_levels):
            return False
        sub = sub_levels[i]
        if sub == "#":
            return False  # the subscription reaches deeper than this ACL filter
        if level == "+":
            continue
        if sub == "+" or sub != level:
            return False
    return len(acl_levels) == len(sub_levels)


def check_filter(topic_filter: str) -> str | None:
    """Why `topic_filter` is not a valid MQTT topic filter, or None."""
    if not topic_filter:
        return "empty topic filter"
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return f"'#' must be a whole last level in {topic_filter!r}"
        if "+" in level and level != "+":
            return f"'+' must be a whole level in {topic_filter!r}"
    return None


def parse_acl(text: str) -> AclRules:
    """Parse an acl_file; raises AclSyntaxError naming the first bad line."""
    anonymous: list[AclRule] = []
    users: dict[str, list[AclRule]] = {}
    patterns: list[AclRule] = []
    current: list[AclRule] = anonymous
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        rest = rest.strip()
        if keyword == "user":
            if not rest:
                raise AclSyntaxError(number, "'user' needs a user name")
            current = users.setdefault(rest, [])
        elif keyword in ("topic", "pattern"):
            rule = _parse_rule(number, keyword, rest)
            (patterns if keyword == "pattern" else current).append(rule)
        else:
            raise AclSyntaxError(
                number, f"unknown keyword {keyword!r} (expected user, topic or pattern)"
            )
    return AclRules(
        anonymous=tuple(anonymous),
        users={name: tuple(rules) for name, rules in users.items()},
        patterns=tuple(patterns),
    )


def _parse_rule(number: int, keyword: str, rest: str) -> AclRule:
    first, _, after = rest.partition(" ")
    if first in _ACCESS and after.strip():
        access, topic_filter = _ACCESS[first], after.strip()
    else:
        access, topic_filter = _ACCESS["readwrite"], rest
    if not topic_filter or topic_filter in _ACCESS:
        raise AclSyntaxError(number, f"'{keyword}' needs a topic filter")
    problem = check_filter(topic_filter)
    if problem is not None:
        raise AclSyntaxError(number, problem)
    if keyword == "topic" and any(s in topic_filter for s in _SUBSTITUTIONS):
        raise AclSyntaxError(number, "%u and %c work only in 'pattern' lines")
    if keyword == "pattern":
        for level in topic_filter.split("/"):
            if level not in _SUBSTITUTIONS and any(s in level for s in _SUBSTITUTIONS):
                raise AclSyntaxError(number, f"{level!r}: %u and %c must fill a whole level")
    return AclRule(topic_filter, access, number)
