"""The acl_file parser and matcher (edge_gateway.mqtt_acl): Mosquitto's format, MQTT wildcards."""

from __future__ import annotations

import pytest

from edge_gateway.mqtt_acl import (
    AclSyntaxError,
    filter_covers,
    parse_acl,
    substitute,
    topic_matches,
)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("plant/site-1/press-01/telemetry", "plant/site-1/press-01/telemetry", True),
        ("plant/site-1/press-01/telemetry", "plant/site-1/press-02/telemetry", False),
        ("plant/+/+/telemetry", "plant/site-1/press-01/telemetry", True),
        ("plant/+/+/telemetry", "plant/site-1/press-01/status", False),
        ("plant/+/telemetry", "plant/site-1/press-01/telemetry", False),  # + is one level
        ("plant/+", "plant/", True),  # an empty level is a level
        ("plant/#", "plant/site-1/press-01/telemetry", True),
        ("plant/#", "plant", True),  # '#' includes the parent level (MQTT-4.7.1-2)
        ("plant/#", "plants/x", False),
        ("#", "plant/x", True),
        ("#", "$SYS/broker/uptime", False),  # MQTT-4.7.2-1
        ("+/broker/uptime", "$SYS/broker/uptime", False),
        ("$SYS/#", "$SYS/broker/uptime", True),
        ("plant/site-1", "plant/site-1/press-01", False),
        ("plant/site-1/press-01", "plant/site-1", False),
        ("Plant/#", "plant/x", False),  # case-sensitive
    ],
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    ("acl_filter", "subscription", "expected"),
    [
        ("plant/#", "plant/+/+/telemetry", True),
        ("plant/#", "plant/#", True),
        ("plant/+/+/telemetry", "plant/+/+/telemetry", True),
        ("plant/+/+/telemetry", "plant/site-1/+/telemetry", True),
        ("plant/site-1/+/telemetry", "plant/+/+/telemetry", False),  # reaches other sites
        ("plant/+/+/telemetry", "plant/#", False),  # reaches deeper
        ("plant/+/+/telemetry", "plant/+/+/status", False),
        ("plant/+/+", "plant/+/+/telemetry", False),
        ("#", "$SYS/#", False),
        ("#", "plant/#", True),
    ],
)
def test_filter_covers(acl_filter: str, subscription: str, expected: bool) -> None:
    assert filter_covers(acl_filter, subscription) is expected


def test_substitution_fills_whole_levels_and_refuses_wildcards_in_names() -> None:
    assert substitute("plant/+/%u/#", "press-01", "c1") == "plant/+/press-01/#"
    assert substitute("clients/%c/%u", "u", "c1") == "clients/c1/u"
    assert substitute("plant/+/%u/#", None, "c1") is None  # no user name, no match
    for name in ("#", "+", "a/b", "x#"):
        assert substitute("plant/+/%u/#", name, "c1") is None
        assert substitute("plant/%c", "u", name) is None


ACL = """
# anonymous clients: read statuses only
topic read plant/+/+/status

user press-01
topic write plant/site-1/press-01/#
topic read commands/press-01

user dashboard
topic readwrite plant/#
topic deny plant/site-1/secret/#

# every client may publish under its own id
pattern write plant/+/%u/#
pattern read clients/%c/inbox
"""


def test_users_anonymous_and_patterns() -> None:
    rules = parse_acl(ACL)
    assert rules.allows_publish("press-01", "c1", "plant/site-1/press-01/telemetry")
    assert not rules.allows_publish("press-01", "c1", "plant/site-1/press-02/telemetry")
    # The pattern: each device under its own id, on any site.
    assert rules.allows_publish("oven-07", "c2", "plant/site-2/oven-07/telemetry")
    assert not rules.allows_publish("oven-07", "c2", "plant/site-2/press-01/telemetry")
    # write does not grant read, read does not grant write.
    assert not rules.allows_receive("press-01", "c1", "plant/site-1/press-01/telemetry")
    assert rules.allows_receive("press-01", "c1", "commands/press-01")
    assert not rules.allows_publish("press-01", "c1", "commands/press-01")
    # %c
    assert rules.allows_receive("oven-07", "c2", "clients/c2/inbox")
    assert not rules.allows_receive("oven-07", "c2", "clients/c1/inbox")
    # Anonymous: the lines before any `user`, and patterns without %u.
    assert rules.allows_receive(None, "anon", "plant/site-1/press-01/status")
    assert not rules.allows_publish(None, "anon", "plant/site-1/press-01/status")
    assert rules.allows_receive(None, "anon", "clients/anon/inbox")
    # A user gets no anonymous grants, an unknown user only the patterns.
    assert not rules.allows_receive("press-01", "c1", "plant/site-1/press-01/status")
    assert not rules.allows_receive("stranger", "c3", "plant/site-1/press-01/status")


def test_deny_wins_wherever_it_stands() -> None:
    rules = parse_acl(ACL)
    assert rules.allows_publish("dashboard", "d", "plant/site-1/press-01/telemetry")
    assert not rules.allows_publish("dashboard", "d", "plant/site-1/secret/x")
    assert not rules.allows_receive("dashboard", "d", "plant/site-1/secret/x")
    # A subscription that only overlaps a deny is taken; the denied topics are held back at
    # delivery. One the deny covers entirely is refused.
    assert rules.allows_subscribe("dashboard", "d", "plant/#")
    assert not rules.allows_subscribe("dashboard", "d", "plant/site-1/secret/#")


def test_subscriptions_need_a_read_grant_covering_them() -> None:
    rules = parse_acl("user bridge\ntopic read plant/+/+/telemetry\n")
    assert rules.allows_subscribe("bridge", "b", "plant/+/+/telemetry")
    assert rules.allows_subscribe("bridge", "b", "plant/site-1/+/telemetry")
    assert not rules.allows_subscribe("bridge", "b", "plant/#")
    assert not rules.allows_subscribe("bridge", "b", "#")


def test_access_defaults_to_readwrite_and_topics_may_hold_spaces() -> None:
    rules = parse_acl("user a b\ntopic plant/x y/#\n")
    assert rules.allows_publish("a b", "c", "plant/x y/z")
    assert rules.allows_receive("a b", "c", "plant/x y/z")


def test_an_empty_acl_allows_nothing() -> None:
    rules = parse_acl("# nothing yet\n\n")
    assert not rules.allows_publish(None, "c", "plant/a/b/telemetry")
    assert not rules.allows_publish("u", "c", "plant/a/b/telemetry")


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("topic read plant/#\nuser\n", 2, "needs a user name"),
        ("user a\ntopic read\n", 2, "needs a topic filter"),
        ("user a\n\n# c\ntopic read plant/#/x\n", 4, "'#' must be a whole last level"),
        ("topic plant/a+\n", 1, "'+' must be a whole level"),
        ("user a\nsubscribe plant/#\n", 2, "unknown keyword 'subscribe'"),
        ("topic write plant/%u/#\n", 1, "only in 'pattern' lines"),
        ("pattern write plant/dev-%u/#\n", 1, "must fill a whole level"),
        ("pattern\n", 1, "needs a topic filter"),
    ],
)
def test_syntax_errors_name_the_line(text: str, line: int, problem: str) -> None:
    with pytest.raises(AclSyntaxError) as caught:
        parse_acl(text)
    assert caught.value.line == line
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"line {line}: ")
