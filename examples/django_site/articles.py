"""The Northfield Post's stories: invented for this example, about an invented town."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Access = Literal["free", "metered", "registered"]


@dataclass(frozen=True)
class Article:
    slug: str
    title: str
    access: Access
    paragraphs: tuple[str, ...]


ARTICLES: tuple[Article, ...] = (
    Article(
        slug="snow-ploughs-ready",
        title="Snow ploughs ready as the first frost arrives",
        access="free",
        paragraphs=(
            "Northfield's four snow ploughs passed their winter inspection on Friday, a week "
            "earlier than usual, after forecasters warned of an early cold snap.",
            "The depot on Tanner Street has stockpiled nine hundred tonnes of grit, enough "
            "for about six weeks of heavy use if the roads freeze every night.",
            "Priority routes are the hospital approach, the hill up to Greystones and the "
            "three bus corridors; side streets are treated only after heavy falls.",
            "Residents can borrow a grit bin for their street by asking the parish office, "
            "provided at least five households agree to share the job of spreading it.",
        ),
    ),
    Article(
        slug="market-hall-lanterns",
        title="Market hall to glow again with restored lanterns",
        access="metered",
        paragraphs=(
            "The twelve iron lanterns that once hung along the market hall's arcade are back "
            "after two years in a foundry workshop being stripped and recast.",
            "Only five of the originals could be saved; the rest were copied from a single "
            "surviving drawing found in a box of papers at the town museum.",
            "The new glass is tinted a faint amber to match photographs from the 1920s, "
            "which a retired photographer spent a winter scanning for the restorers.",
            "The lanterns will be lit for the first time at the winter fair, when the mayor "
            "has promised to switch them on with the original brass key.",
        ),
    ),
    Article(
        slug="choir-wins-regional-prize",
        title="Railway workers' choir wins a regional prize",
        access="metered",
        paragraphs=(
            "The Northfield Railway Choir, founded by signal engineers in 1958, took first "
            "place in the male voice category at the regional festival on Saturday.",
            "Its thirty singers now include a baker, two nurses and a student, though the "
            "choir still rehearses in the old signal box canteen every Tuesday.",
            "The winning programme closed with a song written by a founder member about the "
            "night the last steam train left the station, sung without accompaniment.",
            "The prize money will pay for new music stands and a trip to a festival abroad "
            "next spring, the first time the choir has sung outside the country.",
        ),
    ),
    Article(
        slug="allotment-waiting-list",
        title="Allotment waiting list shrinks as plots are halved",
        access="metered",
        paragraphs=(
            "The waiting list for an allotment in Northfield has fallen from ninety names to "
            "forty since the association began offering half plots last spring.",
            "Many newcomers said a full plot was more than they could manage alongside work, "
            "and several long-standing tenants were glad to give up half of theirs.",
            "A shared tool shed and a rainwater tank, paid for by a bring-and-buy sale, mean "
            "new gardeners need not buy much equipment before their first season.",
            "The association hopes to clear the list altogether by dividing the neglected "
            "plots along the railway fence, once the brambles there have been cut back.",
        ),
    ),
    Article(
        slug="swimming-pool-roof",
        title="Swimming pool roof to be replaced over the summer",
        access="metered",
        paragraphs=(
            "Northfield's public pool will close for ten weeks from July while its leaking "
            "roof is replaced, the leisure trust announced on Thursday.",
            "Swimming clubs will train at the school pool in Easterby during the closure, "
            "with a minibus running from the leisure centre car park each evening.",
            "The new roof will carry solar panels expected to cover a third of the cost of "
            "heating the water, which has doubled over the last three years.",
            "The trust says the reopening will be marked by a free family swim, with the "
            "first length swum by the pool's longest-serving lifeguard.",
        ),
    ),
    Article(
        slug="town-plan-consultation",
        title="What the new town plan means for your street",
        access="registered",
        paragraphs=(
            "Northfield's draft town plan, published on Monday, sets out where six hundred "
            "new homes could be built over the next fifteen years.",
            "Most would go on the former brickworks site by the canal, which the plan says "
            "should also get a primary school, a surgery and a small park.",
            "The plan would turn the upper half of Bridge Street into a pedestrian zone on "
            "weekends, a proposal that has divided shopkeepers along the street.",
            "Residents have until the end of next month to comment, online or at drop-in "
            "sessions in the library, where the maps will be on display every afternoon.",
        ),
    ),
)

BY_SLUG = {article.slug: article for article in ARTICLES}
