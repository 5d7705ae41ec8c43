"""Access levels, route patterns, header precedence and the decision table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentgate.wall.access import (
    AccessDecision,
    AccessLevel,
    AccessReason,
    AccessRules,
    RouteRule,
    article_access,
    compile_path_pattern,
    decide_access,
)
from consentgate.wall.meter import MeterState, article_key

READER = "0" * 32
RULES = AccessRules(
    [
        RouteRule("/articles/free-*", AccessLevel.FREE),
        RouteRule("/articles/*", AccessLevel.METERED),
        RouteRule("/premium/**", AccessLevel.REGISTERED),
    ]
)


def meter_with(*article_ids: str, tampered: bool = False) -> MeterState:
    reads = tuple((article_key(a), 1_700_000_000) for a in article_ids)
    return MeterState(reader_id=READER, reads=reads, tampered=tampered)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("free", AccessLevel.FREE),
        ("METERED", AccessLevel.METERED),
        (" Registered ", AccessLevel.REGISTERED),
        ("paid", None),
        ("", None),
        (None, None),
    ],
)
def test_access_level_parse_is_case_insensitive_and_rejects_unknown(
    value: str | None, expected: AccessLevel | None
) -> None:
    assert AccessLevel.parse(value) is expected


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/articles/*", "/articles/one", True),
        ("/articles/*", "/articles/", True),
        ("/articles/*", "/articles/2024/one", False),
        ("/articles/*", "/articles", False),
        ("/articles/**", "/articles/2024/05/one", True),
        ("/a/**/b", "/a/b", True),
        ("/a/**/b", "/a/x/y/b", True),
        ("/a/**/b", "/a/x/y/c", False),
        ("/news/*.html", "/news/one.html", True),
        ("/news/*.html", "/news/oneXhtml", False),  # "." is literal, not a regex wildcard
        ("/x?y", "/x?y", True),
        ("/x?y", "/xzy", False),
    ],
)
def test_route_pattern_glob_semantics(pattern: str, path: str, matches: bool) -> None:
    assert RouteRule(pattern, AccessLevel.METERED).matches(path) is matches


def test_route_pattern_without_leading_slash_is_refused() -> None:
    with pytest.raises(ValueError, match="starts with '/'"):
        compile_path_pattern("articles/*")


def test_access_rules_first_matching_rule_wins() -> None:
    assert RULES.level_for("/articles/free-tour") is AccessLevel.FREE
    assert RULES.level_for("/articles/budget") is AccessLevel.METERED


def test_access_rules_default_applies_when_nothing_matches() -> None:
    assert RULES.level_for("/about") is AccessLevel.FREE
    strict = AccessRules([], default=AccessLevel.REGISTERED)
    assert strict.level_for("/about") is AccessLevel.REGISTERED


def test_article_access_header_wins_over_route_rule() -> None:
    access = article_access("/premium/x", "free", "story-42", RULES)
    assert access.level is AccessLevel.FREE
    assert access.article_id == "story-42"
    assert access.invalid_header is None


def test_article_access_invalid_header_falls_back_to_rule_and_is_reported() -> None:
    access = article_access("/premium/x", "paid", None, RULES)
    assert access.level is AccessLevel.REGISTERED
    assert access.invalid_header == "paid"


def test_article_access_id_defaults_to_path_without_query() -> None:
    access = article_access("/articles/budget?utm_source=x", None, None, RULES)
    assert access.level is AccessLevel.METERED
    assert access.article_id == "/articles/budget"


def test_article_access_blank_id_header_falls_back_to_path() -> None:
    assert article_access("/articles/a", None, "  ", RULES).article_id == "/articles/a"


def _decide(
    level: AccessLevel,
    *,
    user_id: str | None = None,
    policy: bool = False,
    meter: MeterState | None = None,
    crawler: bool = False,
    article: str = "/a/new",
    unverified: bool = False,
) -> AccessDecision:
    return decide_access(
        level,
        article,
        user_id=user_id,
        needs_policy_acceptance=policy,
        meter=meter if meter is not None else meter_with(),
        limit=3,
        verified_crawler=crawler,
        needs_verification=unverified,
    )


FULL_METER = meter_with("/a/1", "/a/2", "/a/3")
TAMPERED = meter_with(tampered=True)


@pytest.mark.parametrize(
    ("kwargs", "full", "reason", "count"),
    [
        ({"level": AccessLevel.FREE, "meter": TAMPERED}, True, AccessReason.FREE, False),
        (
            {"level": AccessLevel.FREE, "user_id": "u", "policy": True},
            True,
            AccessReason.FREE,
            False,
        ),
        (
            {"level": AccessLevel.REGISTERED, "crawler": True},
            True,
            AccessReason.VERIFIED_CRAWLER,
            False,
        ),
        (
            {"level": AccessLevel.METERED, "crawler": True, "meter": FULL_METER},
            True,
            AccessReason.VERIFIED_CRAWLER,
            False,
        ),
        ({"level": AccessLevel.REGISTERED, "user_id": "u"}, True, AccessReason.SIGNED_IN, False),
        (
            {"level": AccessLevel.METERED, "user_id": "u", "meter": TAMPERED},
            True,
            AccessReason.SIGNED_IN,
            False,
        ),
        (
            {"level": AccessLevel.REGISTERED, "user_id": "u", "policy": True},
            False,
            AccessReason.POLICY_ACCEPTANCE_NEEDED,
            False,
        ),
        (
            {"level": AccessLevel.METERED, "user_id": "u", "policy": True},
            False,
            AccessReason.POLICY_ACCEPTANCE_NEEDED,
            False,
        ),
        (
            {"level": AccessLevel.REGISTERED, "user_id": "u", "unverified": True},
            False,
            AccessReason.VERIFICATION_NEEDED,
            False,
        ),
        (
            {"level": AccessLevel.METERED, "user_id": "u", "unverified": True},
            False,
            AccessReason.VERIFICATION_NEEDED,
            False,
        ),
        (
            # The policy first: accepting it is what the reader is asked before all.
            {"level": AccessLevel.REGISTERED, "user_id": "u", "policy": True, "unverified": True},
            False,
            AccessReason.POLICY_ACCEPTANCE_NEEDED,
            False,
        ),
        (
            {"level": AccessLevel.FREE, "user_id": "u", "unverified": True},
            True,
            AccessReason.FREE,
            False,
        ),
        (
            {"level": AccessLevel.REGISTERED, "crawler": True, "unverified": True},
            True,
            AccessReason.VERIFIED_CRAWLER,
            False,
        ),
        ({"level": AccessLevel.REGISTERED}, False, AccessReason.REGISTRATION_REQUIRED, False),
        (
            {"level": AccessLevel.REGISTERED, "user_id": ""},
            False,
            AccessReason.REGISTRATION_REQUIRED,
            False,
        ),
        ({"level": AccessLevel.METERED}, True, AccessReason.METER_ALLOWS, True),
        (
            {"level": AccessLevel.METERED, "meter": meter_with("/a/1", "/a/2")},
            True,
            AccessReason.METER_ALLOWS,
            True,
        ),
        (
            {"level": AccessLevel.METERED, "meter": FULL_METER},
            False,
            AccessReason.METER_EXHAUSTED,
            False,
        ),
        (
            {"level": AccessLevel.METERED, "meter": FULL_METER, "article": "/a/2"},
            True,
            AccessReason.ALREADY_READ,
            False,
        ),
        (
            {"level": AccessLevel.METERED, "meter": TAMPERED},
            False,
            AccessReason.METER_TAMPERED,
            False,
        ),
    ],
)
def test_decide_access_table(
    kwargs: dict[str, object], full: bool, reason: AccessReason, count: bool
) -> None:
    decision = _decide(**kwargs)  # type: ignore[arg-type]
    assert decision == AccessDecision(full=full, reason=reason, count_read=count)


def test_decide_access_tampered_meter_ignores_its_reads() -> None:
    state = MeterState(reader_id=READER, reads=((article_key("/a/1"), 1),), tampered=True)
    decision = _decide(AccessLevel.METERED, meter=state, article="/a/1")
    assert decision.reason is AccessReason.METER_TAMPERED
    assert decision.full is False


_SEGMENTS = st.sampled_from(["a", "b", "*", "**", "x.y"])


@given(
    patterns=st.lists(
        st.lists(_SEGMENTS, min_size=1, max_size=4).map(lambda s: "/" + "/".join(s)),
        max_size=5,
    ),
    levels=st.lists(st.sampled_from(list(AccessLevel)), min_size=5, max_size=5),
    path=st.lists(st.sampled_from(["a", "b", "c", "x.y", ""]), max_size=5).map(
        lambda s: "/" + "/".join(s)
    ),
)
def test_access_rules_combined_match_is_the_first_matching_rule(
    patterns: list[str], levels: list[AccessLevel], path: str
) -> None:
    # The rules are matched as one alternation; the answer must be the first rule, in
    # order, whose own pattern matches the whole path, else the default.
    rules = [RouteRule(p, levels[i]) for i, p in enumerate(patterns)]
    combined = AccessRules(rules, default=AccessLevel.FREE)
    expected = next((r.access for r in rules if r.matches(path)), AccessLevel.FREE)
    assert combined.level_for(path) == expected
