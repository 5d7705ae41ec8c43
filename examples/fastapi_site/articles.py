"""The Valley Courier's stories: invented for this example, about an invented valley."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Access = Literal["free", "metered", "registered"]


@dataclass(frozen=True)
class Article:
    slug: str
    title: str
    topic: str
    access: Access
    paragraphs: tuple[str, ...]


ARTICLES: tuple[Article, ...] = (
    Article(
        slug="river-festival-returns",
        title="River festival returns after a two-year pause",
        topic="community",
        access="free",
        paragraphs=(
            "The Millbrook river festival will be held again this July, organisers confirmed "
            "on Tuesday, after two summers in which low water made the raft race unsafe.",
            "This year the race moves half a mile downstream, where the channel stays deep "
            "even in a dry spell, and the start line will be marked by the old pumping house.",
            "Volunteers are still needed for the food stalls and the lost-children tent; the "
            "committee meets every Thursday evening in the scout hall on Weir Lane.",
            "Entry to the riverside meadow remains free, though the committee asks visitors "
            "to leave cars at the station and walk the last stretch along the towpath.",
        ),
    ),
    Article(
        slug="orchard-cider-cooperative",
        title="Orchard owners form a cider cooperative",
        topic="business",
        access="metered",
        paragraphs=(
            "Eleven small orchards on the eastern slopes have joined forces to press and "
            "bottle cider under one label, sharing a press bought with a regional grant.",
            "Most of the growers have fewer than two hundred trees, too few to justify their "
            "own equipment, and until now sold their apples to a juice plant at a loss.",
            "The cooperative's first run of four thousand bottles sold out at the autumn "
            "market in under a week, and the members plan to double the volume next year.",
            "A tasting room in the converted granary at Hollins Farm opens in spring, with "
            "tours of the press on Saturday mornings for anyone curious about the process.",
        ),
    ),
    Article(
        slug="bus-route-nine-saved",
        title="Route nine bus saved by a volunteer driver scheme",
        topic="transport",
        access="metered",
        paragraphs=(
            "The hourly bus between Upper Fold and the market town will keep running after "
            "the county agreed to match funds raised by a parish volunteer scheme.",
            "Under the arrangement, trained volunteers drive the quieter evening services "
            "while the operator's paid staff cover the busy morning and afternoon runs.",
            "Residents without cars had warned that losing the route would cut them off from "
            "the surgery, the pharmacy and the only supermarket within ten miles.",
            "The parish clerk said thirty people had applied to drive, among them a retired "
            "lorry driver who completed his passenger licence test in a single morning.",
        ),
    ),
    Article(
        slug="school-garden-harvest",
        title="Primary school garden feeds the lunch hall",
        topic="education",
        access="metered",
        paragraphs=(
            "Pupils at Ashcombe Primary served their own potatoes, beans and courgettes at "
            "lunch this week, the first harvest from a garden dug on a disused netball court.",
            "The raised beds were built by parents over three weekends from reclaimed "
            "scaffolding boards donated by a builder in the village.",
            "Each class looks after one bed and keeps a logbook of rainfall, sowing dates and "
            "the slugs removed by hand, which the head teacher calls the school's best maths.",
            "Any surplus goes to the food bank at St Anne's, which last month received a crate "
            "of marrows so large that two pupils were needed to carry each one.",
        ),
    ),
    Article(
        slug="footbridge-repairs-begin",
        title="Repairs begin on the flood-damaged footbridge",
        topic="transport",
        access="metered",
        paragraphs=(
            "Engineers started work on Monday to replace the timber deck of the Kingsmead "
            "footbridge, closed since the winter floods loosened two of its supports.",
            "Walkers must use the road bridge in the meantime, a detour of about fifteen "
            "minutes that the council has signposted from both ends of the riverside path.",
            "The new deck will be made of recycled plastic planks that do not rot, and the "
            "supports will be anchored a metre deeper into the riverbed than before.",
            "Contractors expect the bridge to reopen before the school holidays, weather "
            "permitting, and promise a ribbon made from the last of the old oak planks.",
        ),
    ),
    Article(
        slug="council-budget-explained",
        title="Where the council's money goes next year",
        topic="politics",
        access="registered",
        paragraphs=(
            "The district council approved a budget of forty-one million pounds on "
            "Wednesday night, after a debate that ran past eleven o'clock.",
            "Adult social care takes the largest share for the first time, overtaking waste "
            "collection, as the number of residents over eighty continues to rise.",
            "Road maintenance loses two hundred thousand pounds, which councillors said "
            "would be made up by a cheaper resurfacing method trialled last year in Brook End.",
            "Council tax rises by just under five percent, the maximum allowed without a "
            "local referendum, adding roughly one pound and forty pence a week for most homes.",
        ),
    ),
)

BY_SLUG = {article.slug: article for article in ARTICLES}
TOPICS = tuple(sorted({article.topic for article in ARTICLES}))
