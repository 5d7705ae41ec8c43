"""The Harbour Ledger's articles and reporters (all invented).

Each article lives in ``content/<slug>.txt``: a few ``key: value`` header lines, a
blank line, then the body, one paragraph per blank-line-separated block. Keeping the
prose out of Python keeps it easy to edit and to read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Literal

Access = Literal["free", "metered", "registered"]
ACCESS_LEVELS: tuple[Access, ...] = ("free", "metered", "registered")

CONTENT_DIR = Path(__file__).resolve().parent / "content"


@dataclass(frozen=True, slots=True)
class Author:
    slug: str
    name: str
    role: str
    note: str


@dataclass(frozen=True, slots=True)
class Article:
    slug: str
    headline: str
    standfirst: str
    section: str
    author: Author
    published: datetime
    access: Access
    why_it_matters: tuple[str, ...]
    video_title: str
    paragraphs: tuple[str, ...]

    @property
    def url(self) -> str:
        return f"/articles/{self.slug}"

    @property
    def text(self) -> str:
        """The full body as plain text, paragraphs separated by blank lines."""
        return "\n\n".join(self.paragraphs)


AUTHORS: dict[str, Author] = {
    author.slug: author
    for author in (
        Author(
            "nia-pembrey",
            "Nia Pembrey",
            "Local democracy reporter",
            "Nia Pembrey has covered Fennside District Council for the Ledger since 2019. "
            "She has sat through more budget meetings than she would like to count.",
        ),
        Author(
            "ruth-adeyemi",
            "Ruth Adeyemi",
            "Education and community reporter",
            "Ruth Adeyemi writes about schools, libraries and the people who keep "
            "Merrow Bay's clubs and halls going. Story ideas are always welcome.",
        ),
        Author(
            "tomasz-wilk",
            "Tomasz Wilk",
            "Environment and transport reporter",
            "Tomasz Wilk reports on the coast, the weather and how people get on and off "
            "Tallow Island. He swims off North Sands all year round.",
        ),
        Author(
            "callum-freer",
            "Callum Freer",
            "Business reporter",
            "Callum Freer covers business and the fishing industry. Before joining the "
            "Ledger he spent six winters as a deckhand on Merrow Bay boats.",
        ),
    )
}


class ContentError(ValueError):
    """An article file is malformed; the message names the file."""


def _parse(path: Path) -> Article:
    header, _, body = path.read_text(encoding="utf-8").partition("\n\n")
    fields: dict[str, list[str]] = {}
    for line in header.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            raise ContentError(f"{path.name}: header line without ':': {line!r}")
        fields.setdefault(key.strip(), []).append(value.strip())

    def one(key: str) -> str:
        values = fields.get(key)
        if not values or len(values) != 1 or not values[0]:
            raise ContentError(f"{path.name}: needs exactly one {key!r} line")
        return values[0]

    access = one("access")
    if access not in ACCESS_LEVELS:
        raise ContentError(f"{path.name}: access must be one of {', '.join(ACCESS_LEVELS)}")
    author_slug = one("author")
    if author_slug not in AUTHORS:
        raise ContentError(f"{path.name}: unknown author {author_slug!r}")
    published = datetime.fromisoformat(one("published"))
    if published.tzinfo is None:
        raise ContentError(f"{path.name}: published needs a UTC offset")
    paragraphs = tuple(" ".join(block.split()) for block in body.split("\n\n") if block.strip())
    if len(paragraphs) < 8:
        raise ContentError(f"{path.name}: an article needs at least 8 paragraphs")
    return Article(
        slug=path.stem,
        headline=one("headline"),
        standfirst=one("standfirst"),
        section=one("section"),
        author=AUTHORS[author_slug],
        published=published,
        access=access,  # type: ignore[arg-type]  # checked against ACCESS_LEVELS above
        why_it_matters=tuple(fields.get("why", ())),
        video_title=one("video"),
        paragraphs=paragraphs,
    )


@cache
def all_articles() -> tuple[Article, ...]:
    """Every article, newest first."""
    articles = [_parse(path) for path in sorted(CONTENT_DIR.glob("*.txt"))]
    return tuple(sorted(articles, key=lambda a: a.published, reverse=True))


def get_article(slug: str) -> Article | None:
    for article in all_articles():
        if article.slug == slug:
            return article
    return None


def related(article: Article, count: int = 3) -> tuple[Article, ...]:
    """Other articles to suggest: same section first, then the most recent."""
    others = [a for a in all_articles() if a.slug != article.slug]
    same = [a for a in others if a.section == article.section]
    rest = [a for a in others if a.section != article.section]
    return tuple((same + rest)[:count])
