"""The page's drill-down: each spike's window, posts and terms; example posts of each driver term and aspect.

Pure: a spike's posts come from range reads of its window made after the analysis (pipeline/drilldown.py),
since a window is known only once the bins are; the reference's terms and the example posts of the driver
terms and aspects come from the analysis itself (examples.DrillSums). Here they become bounded excerpts and
ranked terms; the terms are ranked with the drivers' own log-odds (analysis.rank_drivers), not a second method.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from monitor.analysis import (
    BIN_WIDTH,
    Analysis,
    Driver,
    Spike,
    TermCounts,
    jsonable,
    rank_drivers,
    tokens,
)
from monitor.examples import DrillSums, excerpt, with_term

EXAMPLES = 5  # posts per list of a spike: a handful to read, not a feed
SPIKE_TERMS = 8  # terms and hashtags shown per spike, each
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
    """An Example of a store row (DRILL_COLUMNS with engagement; a naive created_at is UTC)."""
    return Example(
        created_at=_aware(row["created_at"]),
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


class TokenCache(dict[str, list[str]]):
    """analysis.tokens() of each text, worked out once: reposts and copies repeat a text. One per chunk."""

    def __missing__(self, text: str) -> list[str]:
        found = self[text] = tokens(text)
        return found


Span = tuple[datetime, datetime | None]  # [start, end); end None: no end


class Chunk:
    """One chunk of streamed posts, oldest first (naive UTC created_at), with each text's tokens worked out
    once; between() finds a span's posts by bisection, not post by post."""

    def __init__(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.rows = rows
        self.moments = [_naive(row["created_at"]) for row in rows]
        self.tokens = TokenCache()

    def between(self, start: datetime, end: datetime | None) -> Sequence[Mapping[str, Any]]:
        first = bisect_left(self.moments, start)
        return self.rows[first : len(self.rows) if end is None else bisect_left(self.moments, end, lo=first)]
Rank = Callable[[Mapping[str, Any]], tuple[float, ...]]


def by_engagement(row: Mapping[str, Any]) -> tuple[float, ...]:
    return (float(row["engagement"] or 0),)


def by_negativity(row: Mapping[str, Any]) -> tuple[float, ...]:
    """The most negative first; among equally negative posts, the most engaged."""
    return (-float(row["compound"]), float(row["engagement"] or 0))


class TopPosts:
    """The `keep` highest-ranked posts fed to it, each text once (a copy ranked higher replaces the kept one);
    among equals the one fed first (the posts come oldest first). Memory: `keep` posts."""

    def __init__(self, keep: int, rank: Rank = by_engagement) -> None:
        self.keep, self.rank = keep, rank
        self.heap: list[tuple[tuple[float, ...], int, Mapping[str, Any]]] = []
        self.fed = 0

    def push(self, row: Mapping[str, Any]) -> None:
        if not self.keep:
            return
        self.fed += 1
        entry = (self.rank(row), -self.fed, row)
        if len(self.heap) == self.keep and entry[:2] <= self.heap[0][:2]:
            return  # below every kept post (so below any kept copy of its text too)
        same = next((n for n, (_, _, kept) in enumerate(self.heap) if kept["text"] == row["text"]), None)
        if same is not None:
            if entry[:2] > self.heap[same][:2]:
                self.heap[same] = entry
                heapq.heapify(self.heap)
        elif len(self.heap) < self.keep:
            heapq.heappush(self.heap, entry)
        elif entry[:2] > self.heap[0][:2]:
            heapq.heapreplace(self.heap, entry)

    def examples(self) -> list[Example]:
        """The posts kept, best first."""
        return [example(row) for *_, row in sorted(self.heap, key=lambda entry: entry[:2], reverse=True)]


class SpanPosts:
    """One span's posts (a spike's window, the reference): their words, bounded as the drivers' counts are
    (TermCounts), and the most engaged and the most negative of them."""

    def __init__(self, span: Span, keep: int = EXAMPLES) -> None:
        self.start, self.end = _naive(span[0]), None if span[1] is None else _naive(span[1])
        self.counts = TermCounts()
        self.engaged, self.negative = TopPosts(keep, by_engagement), TopPosts(keep, by_negativity)

    def add(self, chunk: Chunk) -> None:
        inside = chunk.between(self.start, self.end)
        found: Counter[str] = Counter()
        for text, times in Counter(row["text"] for row in inside).items():
            for term in chunk.tokens[text]:
                found[term] += times
        for row in inside:
            self.engaged.push(row)
            self.negative.push(row)
        self.counts.add(focus=found, reference=Counter(), prior=found)

    @property
    def terms(self) -> Counter[str]:
        return self.counts.focus


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


def _examples(kept: pd.DataFrame | None) -> list[Example]:
    if kept is None:
        return []
    rows = kept.astype(object).where(kept.notna(), None).to_dict("records")
    return [example({str(name): value for name, value in row.items()}) for row in rows]


def merged_spans(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """The spans, those that overlap or touch made one, in order: each stretch of time is read once."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _naive(moment: datetime) -> datetime:
    """UTC without a zone, as the store hands times back in a stream."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def announced_at(analysis: Analysis) -> datetime:
    """The announcement (or the first milestone): since then is what the drivers and aspects describe."""
    return analysis.milestones.get("announced", min(analysis.milestones.values()))


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
