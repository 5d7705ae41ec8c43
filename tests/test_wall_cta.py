"""The registration CTA and the standalone wall page."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from consentgate.wall.access import AccessReason
from consentgate.wall.cta import (
    BUILTIN_CTA_TEXTS,
    CtaTexts,
    cta_texts,
    render_cta,
    render_wall_page,
)

REGISTER = "/consentgate/register?next=%2Farticles%2Fa"
LOGIN = "/consentgate/login?next=%2Farticles%2Fa"
POLICY = "/consentgate/policy?next=%2Farticles%2Fa"


class Collector(HTMLParser):
    """Tags with their attributes and every text node, as a browser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.texts.append(data.strip())


def parse(markup: str) -> Collector:
    collector = Collector()
    collector.feed(markup)
    collector.close()
    return collector


def links(collected: Collector) -> dict[str, str | None]:
    return {(a.get("class") or ""): a.get("href") for tag, a in collected.tags if tag == "a"}


def test_cta_register_has_required_elements() -> None:
    texts = cta_texts("en")
    markup = render_cta(
        texts, register_url=REGISTER, login_url=LOGIN, reason=AccessReason.METER_EXHAUSTED
    )
    collected = parse(markup)
    aside = collected.tags[0]
    assert aside[0] == "aside"
    assert aside[1]["id"] == "consentgate-cta"
    assert "cg-cta" in (aside[1]["class"] or "").split()
    assert [tag for tag, _ in collected.tags].count("li") == len(texts.benefits)
    assert links(collected) == {"cg-cta__register": REGISTER, "cg-cta__login": LOGIN}
    assert texts.meter_heading in collected.texts
    assert texts.register_label in collected.texts


def test_cta_registration_required_uses_its_heading() -> None:
    texts = cta_texts("en")
    markup = render_cta(
        texts, register_url=REGISTER, login_url=LOGIN, reason=AccessReason.REGISTRATION_REQUIRED
    )
    assert texts.heading in parse(markup).texts


def test_cta_escapes_texts_and_urls() -> None:
    hostile = CtaTexts(
        lang='en" onmouseover="x',
        heading="<script>alert(1)</script>",
        meter_heading="<b>m</b>",
        body="Tom & Jerry",
        benefits=("<img src=x onerror=alert(1)>",),
        register_label="Join",
        sign_in_prompt="?",
        sign_in_label="In",
        policy_heading="p",
        policy_body="p",
        policy_label="p",
        verify_heading="v",
        verify_body="v",
        verify_label="v",
    )
    markup = render_cta(
        hostile,
        register_url='/r?next=/a"><script>x</script>',
        login_url="/l?a=1&b=2",
        reason=AccessReason.METER_EXHAUSTED,
    )
    assert "<script" not in markup and "<img" not in markup and "<b>" not in markup
    collected = parse(markup)
    assert [tag for tag, _ in collected.tags] == [
        "aside",
        "h2",
        "p",
        "ul",
        "li",
        "p",
        "a",
        "p",
        "a",
    ]
    assert "<img src=x onerror=alert(1)>" in collected.texts
    assert links(collected)["cg-cta__register"] == '/r?next=/a"><script>x</script>'
    assert links(collected)["cg-cta__login"] == "/l?a=1&b=2"
    assert collected.tags[0][1]["lang"] == 'en" onmouseover="x'
    assert "onmouseover" not in collected.tags[0][1]


@pytest.mark.parametrize("url", ["javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,x"])
def test_cta_refuses_script_urls(url: str) -> None:
    with pytest.raises(ValueError, match="link"):
        render_cta(
            cta_texts("en"), register_url=url, login_url=LOGIN, reason=AccessReason.METER_EXHAUSTED
        )


def test_cta_policy_variant_links_to_policy_acceptance() -> None:
    texts = cta_texts("en")
    markup = render_cta(
        texts,
        register_url=REGISTER,
        login_url=LOGIN,
        reason=AccessReason.POLICY_ACCEPTANCE_NEEDED,
        policy_url=POLICY,
    )
    collected = parse(markup)
    assert links(collected) == {"cg-cta__policy": POLICY}
    assert texts.policy_body in collected.texts
    assert "please review and accept it to continue reading" in texts.policy_body.lower()


def test_cta_policy_variant_needs_policy_url() -> None:
    with pytest.raises(ValueError, match="policy_url"):
        render_cta(
            cta_texts("en"),
            register_url=REGISTER,
            login_url=LOGIN,
            reason=AccessReason.POLICY_ACCEPTANCE_NEEDED,
        )


@pytest.mark.parametrize("lang", ["en", "fr", "de", "es", "tr"])
def test_cta_verify_variant_links_to_resend_instead_of_register(lang: str) -> None:
    texts = cta_texts(lang)
    verify = "/consentgate/verify/resend?next=/a"
    markup = render_cta(
        texts,
        register_url=REGISTER,
        login_url=LOGIN,
        reason=AccessReason.VERIFICATION_NEEDED,
        verify_url=verify,
    )
    collected = parse(markup)
    assert links(collected) == {"cg-cta__verify": verify}
    assert texts.verify_heading in collected.texts and texts.verify_body in collected.texts
    assert 'data-cg-reason="verification_needed"' in markup


def test_cta_verify_variant_needs_verify_url() -> None:
    with pytest.raises(ValueError, match="verify_url"):
        render_cta(
            cta_texts("en"),
            register_url=REGISTER,
            login_url=LOGIN,
            reason=AccessReason.VERIFICATION_NEEDED,
        )


@pytest.mark.parametrize(
    "reason", [AccessReason.FREE, AccessReason.SIGNED_IN, AccessReason.METER_ALLOWS]
)
def test_cta_for_full_access_reason_is_a_bug(reason: AccessReason) -> None:
    with pytest.raises(ValueError, match="full article"):
        render_cta(cta_texts("en"), register_url=REGISTER, login_url=LOGIN, reason=reason)


@pytest.mark.parametrize("lang", ["en", "fr", "de", "es", "tr"])
def test_cta_texts_exist_for_every_language(lang: str) -> None:
    texts = BUILTIN_CTA_TEXTS[lang]
    assert texts.lang == lang
    assert all(
        isinstance(v, str) and v.strip() for v in (texts.heading, texts.body, texts.register_label)
    )
    assert len(texts.benefits) >= 2


def test_cta_texts_negotiation_falls_back_to_english() -> None:
    assert cta_texts("fr-CA").lang == "fr"
    assert cta_texts("DE_at").lang == "de"
    assert cta_texts("pt").lang == "en"


def test_wall_page_holds_only_the_cta() -> None:
    texts = cta_texts("de")
    page = render_wall_page(
        texts,
        title="Haushalt <2025>",
        register_url=REGISTER,
        login_url=LOGIN,
        reason=AccessReason.METER_TAMPERED,
        lang="de",
        stylesheet_url="/consentgate/static/wall.css?v=1",
    )
    assert page.startswith("<!DOCTYPE html>")
    collected = parse(page)
    tags = [tag for tag, _ in collected.tags]
    assert "script" not in tags and "article" not in tags
    assert ("html", {"lang": "de"}) in collected.tags
    assert ("link", {"rel": "stylesheet", "href": "/consentgate/static/wall.css?v=1"}) in (
        collected.tags
    )
    # Every visible text is either the title or one of the CTA's own texts: no room
    # for any article text to have slipped in.
    allowed = {
        "Haushalt <2025>",
        texts.meter_heading,
        texts.body,
        texts.register_label,
        texts.sign_in_prompt,
        texts.sign_in_label,
        *texts.benefits,
    }
    assert set(collected.texts) <= allowed
    assert "Haushalt &lt;2025&gt;" in page
