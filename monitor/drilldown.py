"""The page's drill-down: each spike's window, posts and terms; example posts of each driver term and aspect.

Pure: a spike's posts come from range reads of its window made after the analysis (pipeline/drilldown.py),
since a window is known only once the bins are; the reference's terms and the example posts of the driver
terms and aspects come from the analysis itself (examples.DrillSums). Here they become bounded excerpts and
ranked terms; the terms are ranked with the drivers' own log-odds (analysis.rank_drivers), not a second method.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from monitor.analysis import (
    BIN_WIDTH,
    Driver,
    Spike,
    jsonable,
    rank_drivers,
    tokens,
)
from monitor.config import to_aware
from monitor.examples import BIN_ENGAGED, BIN_NEGATIVE, DrillSums, excerpt, in_bins, with_term

SPIKE_TERMS = 8  # terms and hashtags shown per spike, each
DAY = timedelta(days=1)
SPIKE_MIN_Z = 1.96  # a spike's word must be over-represented at 95 %: a spike of 40 posts makes many chance words


@dataclass(frozen=True)
class Example:
    """One post shown as an example: its excerpt and the numbers beside it."""

    created_at: datetime
    source: str
    post_id: str
    author: str | None  # the handle as stored (hashed in some archives)
    text: str  # at most EXCERPT characters
    url: str | None
    compound: float
    engagement: int  # likes + reposts + replies
    reposts: int


@dataclass(frozen=True)
class SpikeDetail:
    """What one spike was: its window, how many posts against the reference, its posts and its terms."""

    number: int  # 1-based, in the order of Analysis.spikes; the page's anchor is spike-<number>
    spike: Spike
    start: datetime  # the first bin's start (UTC)
    end: datetime  # the last bin's end
    posts: int  # posts in the window
    reposts: int  # of which reposts
    expected: float | None  # volume spikes: posts the window would hold at the reference's median per bin
    engaged: list[Example]  # most engaged first
    negative: list[Example]  # most negative first
    terms: list[Driver]  # words over-represented against the baseline
    hashtags: list[Driver]

    @property
    def anchor(self) -> str:
        return f"spike-{self.number}"

    @property
    def repost_share(self) -> float | None:
        return self.reposts / self.posts if self.posts else None


@dataclass
class Drilldown:
    """The drill-down of one event: per spike, per driver term, per aspect."""

    spikes: list[SpikeDetail] = field(default_factory=list)
    drivers: dict[str, list[Example]] = field(default_factory=dict)  # term → example posts
    aspects: dict[str, list[Example]] = field(default_factory=dict)  # aspect → example posts

    def spike(self, spike: Spike) -> SpikeDetail | None:
        return next((detail for detail in self.spikes if detail.spike == spike), None)


def example(row: Mapping[str, Any]) -> Example:
    """An Example of a kept row (examples.EXAMPLE_COLUMNS; a naive created_at is UTC)."""
    return Example(
        created_at=to_aware(row["created_at"], UTC),
        source=str(row["source"]),
        post_id=str(row["post_id"]),
        author=row["author"],
        text=excerpt(str(row["text"])),
        url=row["url"],
        compound=float(row["compound"]),
        engagement=int(row["engagement"] or 0),
        reposts=int(row["reposts"] or 0),
    )


def spike_span(spike: Spike, bin_size: str) -> tuple[datetime, datetime]:
    """The spike's window: from its first bin's start to its last bin's end."""
    return spike.start, spike.end + BIN_WIDTH[bin_size]


def window_counts(bins: pd.DataFrame, span: tuple[datetime, datetime]) -> tuple[int, int, int]:
    """(posts, reposts, bins) of the analysis' bins that start inside the span."""
    inside = bins[(bins.index >= pd.Timestamp(span[0])) & (bins.index < pd.Timestamp(span[1]))]
    return int(inside["volume"].sum()), int(inside["reposts"].sum()), len(inside)


def text_terms(texts: Iterable[tuple[str, int]]) -> Counter[str]:
    """The terms (analysis.tokens) of (text, posts that have it) pairs, each text's counted once per post."""
    found: Counter[str] = Counter()
    for text, times in texts:
        for term in tokens(text):
            found[term] += times
    return found


def segments(windows: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """The stretches of time the windows cover, cut at every window's start and end: disjoint, in order, and
    each window exactly the union of the segments inside it. Each stretch is read once for all its windows."""
    spans = list(windows)
    cuts = sorted({moment for span in spans for moment in span})
    pieces = zip(cuts, cuts[1:], strict=False)
    return [(start, end) for start, end in pieces if any(a <= start and end <= b for a, b in spans)]


def whole_days(span: tuple[datetime, datetime], within: tuple[datetime | None, datetime | None]) -> list[str]:
    """The UTC days (YYYY-MM-DD) that lie wholly inside span and inside `within` (the analysed window)."""
    first = _next_midnight(span[0])
    lower, upper = within
    days = []
    while first + DAY <= span[1]:
        if (lower is None or first >= lower) and (upper is None or first + DAY <= upper):
            days.append(first.date().isoformat())
        first += DAY
    return days


def outside_days(span: tuple[datetime, datetime], days: Iterable[str]) -> list[tuple[datetime, datetime]]:
    """The stretches of span not covered by these UTC days, in order."""
    cuts = sorted(datetime.fromisoformat(day).replace(tzinfo=UTC) for day in days)
    rest, start = [], span[0]
    for day in cuts:
        if start < day:
            rest.append((start, day))
        start = day + DAY
    return rest + ([(start, span[1])] if start < span[1] else [])


def _next_midnight(moment: datetime) -> datetime:
    """The UTC midnight at or after the moment."""
    moment = moment.astimezone(UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + DAY if midnight < moment else midnight


def spike_terms(focus: Counter[str], baseline: Counter[str], top: int = SPIKE_TERMS) -> tuple[list[Driver], list[Driver]]:
    """The words and the hashtags of a spike over-represented against the baseline (log-odds z at least
    SPIKE_MIN_Z, the two corpora pooled as the prior), the top of each."""
    ranked = [d for d in rank_drivers(focus, baseline, focus + baseline, top=len(focus)) if d.z >= SPIKE_MIN_Z]
    words = [driver for driver in ranked if not driver.term.startswith("#")]
    hashtags = [driver for driver in ranked if driver.term.startswith("#")]
    return words[:top], hashtags[:top]


def driver_examples(sums: DrillSums, terms: Iterable[str]) -> dict[str, list[Example]]:
    """Each driver term's most engaged examples among the EXAMPLE_POOL most engaged negative posts since the
    announcement (a term none of them has gets an empty list)."""
    return {term: _examples(with_term(sums.negative, term)) for term in terms}


def aspect_examples(sums: DrillSums) -> dict[str, list[Example]]:
    """Each aspect's most engaged scored posts since the announcement."""
    return {name: _examples(found) for name, found in sums.aspects.items()}


def spike_examples(sums: DrillSums, spike: Spike) -> tuple[list[Example], list[Example]]:
    """A spike's most engaged and most negative scored posts, from the per-bin lists over its bins."""
    engaged = in_bins(sums.engaged, spike.start, spike.end, BIN_ENGAGED)
    return _examples(engaged), _examples(in_bins(sums.most_negative, spike.start, spike.end, BIN_NEGATIVE))


def _examples(kept: pd.DataFrame | None) -> list[Example]:
    if kept is None:
        return []
    rows = kept.astype(object).where(kept.notna(), None).to_dict("records")
    return [example({str(name): value for name, value in row.items()}) for row in rows]




def with_drilldown(summary: dict[str, Any], drill: Drilldown) -> dict[str, Any]:
    """summary.json with the drill-down: each of its spikes (same order) gets its window, posts and terms;
    driver_examples and aspect_examples map each term and aspect to its example posts."""
    spikes = [{**row, **_spike_summary(detail)} for row, detail in zip(summary["spikes"], drill.spikes, strict=True)]
    return summary | {
        "spikes": spikes,
        "driver_examples": jsonable({term: [asdict(e) for e in posts] for term, posts in drill.drivers.items()}),
        "aspect_examples": jsonable({name: [asdict(e) for e in posts] for name, posts in drill.aspects.items()}),
    }


def _spike_summary(detail: SpikeDetail) -> dict[str, Any]:
    return jsonable({
        "anchor": detail.anchor,
        "window": {"start": detail.start, "end": detail.end},
        "posts": detail.posts,
        "reposts": detail.reposts,
        "repost_share": detail.repost_share,
        "expected_posts": detail.expected,
        "top_posts": {"engaged": [asdict(e) for e in detail.engaged], "negative": [asdict(e) for e in detail.negative]},
        "terms": [asdict(driver) for driver in detail.terms],
        "hashtags": [asdict(driver) for driver in detail.hashtags],
    })
