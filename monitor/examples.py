"""Example posts the analysis keeps for the page's drill-down, so the drill-down reads no post but its spikes' texts.

Each list holds the `size` highest-ranked posts fed to it (per bin, for a spike's), each text once (its
highest-ranked copy); the order is total (ties go to the earliest, then by source and id). Such a list of
a day merged with another day's is the list of both days, exactly: a text among the top of all posts is
among the top of its own day's posts. So the per-day parts of the analysis keep these lists, and an
incremental report gives the lists of a full one.
Texts are kept as excerpts (EXCERPT characters), with a digest of the whole text (copies are told by it)
and the text's terms (analysis.tokens of the whole text), so memory stays `keep` short rows.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

EXAMPLE_POOL = 300  # the most engaged negative posts since the announcement: the driver terms' examples come from these
TERM_EXAMPLES = 3  # posts per driver term and per aspect
SPIKE_EXAMPLES = 5  # posts per list of a spike: a handful to read, not a feed
EXCERPT = 280  # characters of a post shown; a longer text is cut at a word and ends in "…"
EXAMPLE_COLUMNS = ["created_at", "source", "post_id", "author", "text", "url", "compound", "engagement", "reposts"]
BY_ENGAGEMENT = {"engagement": False, "created_at": True, "source": True, "post_id": True}  # column → ascending
BY_NEGATIVITY = {"compound": True, "engagement": False, "created_at": True, "source": True, "post_id": True}


@dataclass(frozen=True)
class Keep:
    """Which posts a list keeps: the `size` first in `order`, of each value of the column `per` if given."""

    size: int
    order: dict[str, bool] = field(default_factory=lambda: BY_ENGAGEMENT)
    per: str | None = None


POOL = Keep(EXAMPLE_POOL)
ASPECT = Keep(TERM_EXAMPLES)
BIN_ENGAGED = Keep(SPIKE_EXAMPLES, BY_ENGAGEMENT, per="bin")
BIN_NEGATIVE = Keep(SPIKE_EXAMPLES, BY_NEGATIVITY, per="bin")


@dataclass
class DrillSums:
    """What the analysis hands the drill-down besides its numbers (never in summary.json)."""

    reference: Counter[str] = field(default_factory=Counter)  # terms of scored baseline posts (TermCounts.reference)
    prior: Counter[str] = field(default_factory=Counter)  # terms of every scored post of the window
    negative: pd.DataFrame | None = None  # the EXAMPLE_POOL most engaged negative posts since the announcement
    aspects: dict[str, pd.DataFrame | None] = field(default_factory=dict)  # aspect → its TERM_EXAMPLES posts
    engaged: pd.DataFrame | None = None  # per bin, its SPIKE_EXAMPLES most engaged scored posts
    most_negative: pd.DataFrame | None = None  # per bin, its SPIKE_EXAMPLES most negative scored posts


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """The text on one line (runs of spaces and line breaks as one space); past the limit, cut at the last
    space before it, with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip() + "…"


def examples_of(posts: pd.DataFrame, keep: Keep, words: Callable[[str], list[str]]) -> pd.DataFrame:
    """The posts a list keeps of posts (EXAMPLE_COLUMNS, whole texts, and keep.per), as kept: excerpts, with
    `key` (the whole text's digest) and `terms` (its distinct words, space-separated)."""
    top = _top(posts[[*EXAMPLE_COLUMNS, *([keep.per] if keep.per else [])]], keep, "text")
    return top.assign(
        key=top["text"].map(_digest),
        terms=top["text"].map(lambda text: " ".join(sorted(set(words(text))))),
        text=top["text"].map(excerpt),
    ).reset_index(drop=True)


def merged_examples(mine: pd.DataFrame | None, other: pd.DataFrame | None, keep: Keep) -> pd.DataFrame | None:
    """The posts a list keeps of two kept lists."""
    if mine is None or other is None:
        return other if mine is None else mine
    return _top(pd.concat([mine, other], ignore_index=True), keep, "key").reset_index(drop=True)


def with_term(kept: pd.DataFrame | None, term: str, size: int = TERM_EXAMPLES) -> pd.DataFrame | None:
    """The `size` first of a kept list whose text has the term."""
    if kept is None:
        return None
    return kept[kept["terms"].str.split().map(lambda terms: term in terms)].head(size)


def in_bins(kept: pd.DataFrame | None, first: Any, last: Any, keep: Keep) -> pd.DataFrame | None:
    """The `keep.size` first of per-bin lists over the bins first…last, each text once: the list of the span."""
    if kept is None:
        return None
    inside = kept[(kept["bin"] >= first) & (kept["bin"] <= last)]
    return _top(inside, Keep(keep.size, keep.order), "key")


def _top(posts: pd.DataFrame, keep: Keep, same: str) -> pd.DataFrame:
    """The first keep.size of posts in keep.order (per keep.per), each value of `same` once (its first)."""
    ranked = posts.sort_values(list(keep.order), ascending=list(keep.order.values()), kind="stable")
    if keep.per is None:
        return ranked.drop_duplicates(same).head(keep.size)
    return ranked.drop_duplicates([keep.per, same]).groupby(keep.per, sort=False).head(keep.size)


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
