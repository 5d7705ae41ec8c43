"""HTML for The Harbour Ledger, written as plain functions (no template engine).

Every value that comes from content goes through :func:`html.escape`. The markup is
deliberately close to what real news sites send, because consentgate rewrites it:

* the analytics script is inert (``type="text/plain"``) until the reader consents;
* the video embed has ``data-src`` instead of ``src`` until marketing is allowed;
* the article body sits in ``<div class="article-body">``, with the "Why it matters"
  box before it and "Also read", the author note and the newsletter box after it,
  so that a registration wall can cut the body after the lead paragraphs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from html import escape
from urllib.parse import quote

from .articles import Article, all_articles, related

SITE_NAME = "The Harbour Ledger"
TAGLINE = "News from Merrow Bay, Tallow Island and the Fenn estuary"
SECTIONS: tuple[str, ...] = (
    "News",
    "Politics",
    "Environment",
    "Education",
    "Business",
    "Community",
)
TEXT_SIZES: tuple[str, ...] = ("small", "normal", "large")

ANALYTICS_TAG = (
    '<script type="text/plain" data-consent="analytics" '
    'data-src="/static/demo-analytics.js"></script>'
)


def section_slug(section: str) -> str:
    return section.lower()


def human_date(article: Article) -> str:
    return f"{article.published.day} {article.published:%B %Y}"


def json_ld(data: object) -> str:
    """JSON for a ``<script>`` element: '<', '>' and '&' escaped so it cannot end it."""
    text = json.dumps(data, ensure_ascii=False, indent=2)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# -- page frame ---------------------------------------------------------------------


def layout(
    *,
    title: str,
    main: str,
    path: str,
    text_size: str = "normal",
    description: str = TAGLINE,
    head_extra: str = "",
    main_attrs: str = "",
) -> str:
    size = text_size if text_size in TEXT_SIZES else "normal"
    page_title = f"{title} | {SITE_NAME}" if title != SITE_NAME else SITE_NAME
    return f"""<!doctype html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(page_title)}</title>
<meta name="description" content="{escape(description)}">
<link rel="stylesheet" href="/static/site.css">
{head_extra}</head>
<body class="text-{size}">
<a class="skip-link" href="#main">Skip to content</a>
{_header(path, size)}
<main id="main"{main_attrs}>
{main}
</main>
{_footer()}
{ANALYTICS_TAG}
</body>
</html>
"""


def _header(path: str, size: str) -> str:
    nav = "\n".join(
        f'<li><a href="/sections/{section_slug(s)}">{escape(s)}</a></li>' for s in SECTIONS
    )
    labels = {"small": "A−", "normal": "A", "large": "A+"}
    next_path = escape(quote(path, safe="/"))
    current = ' aria-current="true"'
    sizes = " ".join(
        f'<a href="/prefs?size={s}&amp;next={next_path}" class="size-{s}"'
        f'{current if s == size else ""} title="{s.capitalize()} text">{labels[s]}</a>'
        for s in TEXT_SIZES
    )
    return f"""<header class="site-header">
<div class="topbar">
<span class="edition">Merrow Bay edition</span>
<span class="text-size">Text size: {sizes}</span>
</div>
<p class="masthead"><a href="/">{SITE_NAME}</a></p>
<p class="tagline">{escape(TAGLINE)}</p>
<nav class="site-nav" aria-label="Sections">
<ul>
<li><a href="/">Home</a></li>
{nav}
</ul>
</nav>
</header>"""


def _footer() -> str:
    return f"""<footer class="site-footer">
<p><strong>{SITE_NAME}</strong> — 14 Quay Street, Merrow Bay.</p>
<p class="demo-note">A fictional newspaper made to demonstrate consentgate. The town,
the people and the stories are invented.</p>
<ul class="footer-links">
<li><a href="/privacy">Privacy policy</a></li>
<li><a href="/privacy#cookies">Cookies we use</a></li>
<li><a href="/_demo/mailbox">Demo mailbox</a></li>
<li><a href="/">Home</a></li>
</ul>
</footer>"""


# -- pieces -------------------------------------------------------------------------


def _kicker(article: Article) -> str:
    href = f"/sections/{section_slug(article.section)}"
    return f'<p class="kicker"><a href="{href}">{escape(article.section)}</a></p>'


def _time(article: Article) -> str:
    return f'<time datetime="{article.published.isoformat()}">{human_date(article)}</time>'


def _teaser(article: Article, *, lead: bool = False) -> str:
    heading = "h2" if lead else "h3"
    return f"""<article class="teaser{" teaser-lead" if lead else ""}">
{_kicker(article)}
<{heading}><a href="{article.url}">{escape(article.headline)}</a></{heading}>
<p class="standfirst">{escape(article.standfirst)}</p>
<p class="meta">{escape(article.author.name)} · {_time(article)}</p>
</article>"""


def _video(article: Article) -> str:
    title = f"Video: {article.video_title}"
    iframe = (
        f'<iframe data-consent="marketing" data-src="/static/embed.html" title="{escape(title)}"'
        ' width="640" height="360" loading="lazy"></iframe>'
    )
    return f"""<figure class="video-embed">
{iframe}
<figcaption>{escape(title)}. The player comes from our (pretend) video partner and loads
only if you allow advertising cookies.</figcaption>
</figure>"""


def _newsletter() -> str:
    return """<section class="newsletter" aria-labelledby="newsletter-heading">
<h2 id="newsletter-heading">The Ledger Morning</h2>
<p>The day's Merrow Bay news in your inbox at seven, Monday to Saturday.</p>
<form method="post" action="/newsletter">
<label for="newsletter-email">Email address</label>
<input id="newsletter-email" name="email" type="email" required autocomplete="email">
<button type="submit">Sign up</button>
</form>
</section>"""


# -- pages --------------------------------------------------------------------------


def home_page(*, text_size: str) -> str:
    articles = all_articles()
    lead, secondary, rest = articles[0], articles[1:3], articles[3:]
    below_lead = "\n".join(f"<li>{_teaser(a)}</li>" for a in secondary)
    items = "\n".join(f"<li>{_teaser(a)}</li>" for a in rest)
    main = f"""<h1 class="visually-hidden">{SITE_NAME}: latest news</h1>
<div class="front">
<div class="top-stories">
{_teaser(lead, lead=True)}
<ol class="teasers secondary">
{below_lead}
</ol>
</div>
<section class="latest" aria-labelledby="latest-heading">
<h2 id="latest-heading">Latest</h2>
<ol class="teasers">
{items}
</ol>
</section>
</div>"""
    return layout(title=SITE_NAME, main=main, path="/", text_size=text_size)


def section_page(section: str, articles: Iterable[Article], *, text_size: str) -> str:
    items = "\n".join(f"<li>{_teaser(a)}</li>" for a in articles)
    main = f"""<h1 class="section-title">{escape(section)}</h1>
<ol class="teasers">
{items}
</ol>"""
    return layout(
        title=section,
        main=main,
        path=f"/sections/{section_slug(section)}",
        text_size=text_size,
    )


def article_page(article: Article, *, text_size: str) -> str:
    data = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": article.headline,
        "description": article.standfirst,
        "articleSection": article.section,
        "datePublished": article.published.isoformat(),
        "dateModified": article.published.isoformat(),
        "author": {"@type": "Person", "name": article.author.name},
        "publisher": {"@type": "NewsMediaOrganization", "name": SITE_NAME},
        "mainEntityOfPage": article.url,
        "isAccessibleForFree": article.access == "free",
        "hasPart": {
            "@type": "WebPageElement",
            "isAccessibleForFree": article.access == "free",
            "cssSelector": ".article-body",
        },
        "articleBody": article.text,
    }
    head = f'<script type="application/ld+json">\n{json_ld(data)}\n</script>\n'
    why = "\n".join(f"<li>{escape(point)}</li>" for point in article.why_it_matters)
    body = "\n".join(f"<p>{escape(p)}</p>" for p in article.paragraphs)
    also = "\n".join(
        f'<li><a href="{a.url}">{escape(a.headline)}</a></li>' for a in related(article)
    )
    label = {
        "free": '<p class="access-label">Free to read</p>\n',
        "registered": '<p class="access-label">For registered readers</p>\n',
        "metered": "",
    }[article.access]
    main = f"""<article class="story" data-article-id="{escape(article.slug)}">
<header class="story-header">
{_kicker(article)}
{label}<h1>{escape(article.headline)}</h1>
<p class="standfirst">{escape(article.standfirst)}</p>
<p class="byline">By <span class="author">{escape(article.author.name)}</span>,
{escape(article.author.role)} · {_time(article)}</p>
</header>
<aside class="why-it-matters" aria-labelledby="why-heading">
<h2 id="why-heading">Why it matters</h2>
<ul>
{why}
</ul>
</aside>
<div class="article-body">
{body}
</div>
{_video(article)}
<section class="also-read" aria-labelledby="also-heading">
<h2 id="also-heading">Also read</h2>
<ul>
{also}
</ul>
</section>
<aside class="author-note">
<h2>About the author</h2>
<p>{escape(article.author.note)}</p>
</aside>
{_newsletter()}
</article>"""
    return layout(
        title=article.headline,
        main=main,
        path=article.url,
        text_size=text_size,
        description=article.standfirst,
        head_extra=head,
    )


def privacy_page(markdown: str, *, text_size: str) -> str:
    main = f'<article class="prose">\n{render_markdown(markdown)}\n</article>'
    return layout(title="Privacy policy", main=main, path="/privacy", text_size=text_size)


def shell_page() -> str:
    """The page shell consentgate sets its own pages into (register, sign in, settings,
    the receipt: ``[pages] layout_path``): the site's masthead, navigation and footer
    around a <main> marked ``data-consentgate-content``, whose content is replaced."""
    main = '<div class="message"><p>consentgate puts its page here.</p></div>'
    return layout(title=SITE_NAME, main=main, path="/", main_attrs=" data-consentgate-content")


_URL = re.compile(r"https?://[^\s<>\"']+")


def mailbox_page(messages: list[dict[str, str]], *, path: str, text_size: str) -> str:
    """The demo's stand-in for readers' inboxes: the mail consentgate sent, newest first,
    with the links in it clickable (a real site sends it by SMTP; see docs/mail.md)."""
    if not messages:
        items = "<p>No mail yet. Register, or ask for a sign-in link, and it appears here.</p>"
    else:
        parts = []
        for message in messages:
            text = _URL.sub(
                lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escape(message["text"])
            )
            parts.append(
                f"""<article class="mail">
<h2>{escape(message["subject"])}</h2>
<p class="mail-meta">To {escape(message["to"])} · {escape(message["date"])}</p>
<pre class="mail-text">{text}</pre>
</article>"""
            )
        items = "\n".join(parts)
    main = f"""<div class="mailbox">
<h1>Demo mailbox</h1>
<p>Every message consentgate sent from this demo, newest first. A real site delivers
them by SMTP; the demo writes them to its data directory and shows them here.</p>
{items}
</div>"""
    return layout(title="Demo mailbox", main=main, path=path, text_size=text_size)


def message_page(title: str, message: str, *, path: str, text_size: str) -> str:
    main = f"""<div class="message">
<h1>{escape(title)}</h1>
<p>{escape(message)}</p>
<p><a href="/">Back to the front page</a></p>
</div>"""
    return layout(title=title, main=main, path=path, text_size=text_size)


# -- a very small Markdown subset, for the privacy policy ------------------------------

_INLINE_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_SAFE_URL = re.compile(r"^(?:/|#|https?://|mailto:)", re.IGNORECASE)


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _inline(text: str) -> str:
    """Escape, then apply `code`, **bold**, *italic* and [links](url)."""
    html = escape(text, quote=True)
    html = _INLINE_CODE.sub(r"<code>\1</code>", html)
    html = _BOLD.sub(r"<strong>\1</strong>", html)
    html = _ITALIC.sub(r"<em>\1</em>", html)

    def link(match: re.Match[str]) -> str:
        label, url = match.group(1), match.group(2)
        if not _SAFE_URL.match(url):
            return label
        return f'<a href="{url}">{label}</a>'

    return _LINK.sub(link, html)


def render_markdown(source: str) -> str:
    """Headings (with ids), paragraphs and bulleted/numbered lists; nothing more.

    ``{#id}`` at the end of a heading sets its id explicitly.
    """
    out: list[str] = []
    paragraph: list[str] = []
    list_tag: str | None = None
    items: list[str] = []

    def flush_paragraph() -> None:
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    def flush_list() -> None:
        nonlocal list_tag
        if list_tag is not None:
            inner = "\n".join(f"<li>{_inline(item)}</li>" for item in items)
            out.append(f"<{list_tag}>\n{inner}\n</{list_tag}>")
            items.clear()
            list_tag = None

    for raw in source.splitlines():
        line = raw.rstrip()
        if not line.strip():
            flush_paragraph()
            flush_list()
            continue
        heading = _HEADING.match(line)
        bullet = _BULLET.match(line)
        numbered = _NUMBERED.match(line)
        if heading:
            flush_paragraph()
            flush_list()
            level = len(heading.group(1))
            text = heading.group(2)
            explicit = re.search(r"\s*\{#([a-z0-9-]+)\}$", text)
            if explicit:
                anchor, text = explicit.group(1), text[: explicit.start()]
            else:
                anchor = _slugify(text)
            out.append(f'<h{level} id="{anchor}">{_inline(text)}</h{level}>')
        elif bullet or numbered:
            flush_paragraph()
            tag = "ul" if bullet else "ol"
            if list_tag != tag:
                flush_list()
                list_tag = tag
            match = bullet or numbered
            assert match is not None
            items.append(match.group(1))
        elif list_tag is not None and raw.startswith((" ", "\t")):
            items[-1] += " " + line.strip()  # a wrapped list item
        else:
            flush_list()
            paragraph.append(line.strip())
    flush_paragraph()
    flush_list()
    return "\n".join(out)
