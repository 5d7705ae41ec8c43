"""The free-registration wall: access rules, meter, crawler verification, JSON-LD, CTA.

Knows nothing of HTML parsing (the pipeline wires the rewriter) nor of HTTP frameworks:
everything here takes and returns plain values.
"""

from consentgate.wall.access import (
    AccessDecision,
    AccessLevel,
    AccessReason,
    AccessRules,
    ArticleAccess,
    RouteRule,
    article_access,
    decide_access,
)
from consentgate.wall.crawlers import (
    CrawlerVerifier,
    Resolver,
    SystemResolver,
    claims_to_be_crawler,
)
from consentgate.wall.cta import CtaTexts, cta_texts, render_cta, render_wall_page
from consentgate.wall.jsonld import JsonLdError, scrub_jsonld
from consentgate.wall.meter import (
    MeterCookieCodec,
    MeterState,
    MeterStore,
    MeterWindow,
    ServerMeter,
    ServerMeterVerdict,
    article_key,
)

__all__ = [
    "AccessDecision",
    "AccessLevel",
    "AccessReason",
    "AccessRules",
    "ArticleAccess",
    "CrawlerVerifier",
    "CtaTexts",
    "JsonLdError",
    "MeterCookieCodec",
    "MeterState",
    "MeterStore",
    "MeterWindow",
    "Resolver",
    "RouteRule",
    "ServerMeter",
    "ServerMeterVerdict",
    "SystemResolver",
    "article_access",
    "article_key",
    "claims_to_be_crawler",
    "cta_texts",
    "decide_access",
    "render_cta",
    "render_wall_page",
    "scrub_jsonld",
]
