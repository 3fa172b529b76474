"""The page's drill-down: each spike's window, posts and terms; example posts of each driver term and aspect.

Pure: the posts come from bounded store reads made after the analysis (pipeline/drilldown.py), since a
spike's window is known only once the bins are. Here they become bounded excerpts and ranked terms; the
terms are ranked with the drivers' own log-odds (analysis.rank_drivers), not a second method.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from monitor.analysis import BIN_WIDTH, NEGATIVE_AT, Analysis, Driver, Spike, jsonable, rank_drivers, tokens

EXAMPLES = 5  # posts per list of a spike: a handful to read, not a feed
TERM_EXAMPLES = 3  # posts per driver term and per aspect (there are up to 15 terms)
EXCERPT = 280  # characters of a post shown; a longer text is cut at a word and ends in "…"
SPIKE_TERMS = 8  # terms and hashtags shown per spike, each


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


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """The text on one line (runs of spaces and line breaks as one space); past the limit, cut at the last
    space before it, with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip() + "…"


def example(row: Mapping[str, Any]) -> Example:
    """An Example of a store row (DRILL_COLUMNS with engagement)."""
    return Example(
        created_at=row["created_at"],
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


def count_terms(texts: Iterable[str]) -> Counter[str]:
    """Term counts as the drivers count them: every token of every post."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(tokens(text))
    return counts


def spike_terms(focus: Counter[str], baseline: Counter[str], top: int = SPIKE_TERMS) -> tuple[list[Driver], list[Driver]]:
    """The words and the hashtags of a spike over-represented against the baseline (log-odds z, the two
    corpora pooled as the prior), the top of each."""
    ranked = rank_drivers(focus, baseline, focus + baseline, top=len(focus))
    words = [driver for driver in ranked if not driver.term.startswith("#")]
    hashtags = [driver for driver in ranked if driver.term.startswith("#")]
    return words[:top], hashtags[:top]


class ExampleHeaps:
    """The TERM_EXAMPLES most engaged posts per driver term and per aspect, fed chunk by chunk (bounded memory).

    A driver term's examples are negative posts containing it (the drivers are terms of negative posts);
    an aspect's are any scored posts tagged with it. A text already kept for a name is not kept twice.
    Ties go to the earlier post.
    """

    def __init__(self, terms: Iterable[str], aspects: Iterable[str], keep: int = TERM_EXAMPLES) -> None:
        self.keep = keep
        self.terms: dict[str, list[tuple[int, int, dict[str, Any]]]] = {term: [] for term in terms}
        self.aspects: dict[str, list[tuple[int, int, dict[str, Any]]]] = {name: [] for name in aspects}
        self.seen = 0

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.seen += 1
            if self.terms and float(row["compound"]) <= NEGATIVE_AT:
                for term in set(tokens(str(row["text"]))) & self.terms.keys():
                    self._push(self.terms[term], row)
            for name in set(str(row["aspects"] or "").split(",")) & self.aspects.keys():
                self._push(self.aspects[name], row)

    def _push(self, heap: list[tuple[int, int, dict[str, Any]]], row: dict[str, Any]) -> None:
        if any(kept["text"] == row["text"] for _, _, kept in heap):
            return
        entry = (int(row["engagement"] or 0), -self.seen, row)
        if len(heap) < self.keep:
            heapq.heappush(heap, entry)
        elif entry[:2] > heap[0][:2]:
            heapq.heapreplace(heap, entry)

    def examples(self) -> tuple[dict[str, list[Example]], dict[str, list[Example]]]:
        """(term → examples, aspect → examples), each list most engaged first."""
        return _ranked(self.terms), _ranked(self.aspects)


def _ranked(heaps: dict[str, list[tuple[int, int, dict[str, Any]]]]) -> dict[str, list[Example]]:
    return {name: [example(row) for *_, row in sorted(heap, key=lambda e: e[:2], reverse=True)] for name, heap in heaps.items()}


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
