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

import numpy as np
import pandas as pd

EXAMPLE_POOL = 300  # the most engaged negative posts since the announcement: the driver terms' examples come from these
TERM_EXAMPLES = 3  # posts per driver term and per aspect
SPIKE_EXAMPLES = 5  # posts per list of a spike: a handful to read, not a feed
EXCERPT = 280  # characters of a post shown; a longer text is cut at a word and ends in "…"
SETTLE_AFTER = 64  # pieces a KeptList holds before it ranks them into one (bounded memory)
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


def examples_of(
    posts: pd.DataFrame, keep: Keep, words: Callable[[str], list[str]], rows: np.ndarray | None = None
) -> pd.DataFrame:
    """The posts a list keeps of posts (EXAMPLE_COLUMNS, whole texts, and keep.per; only the rows of a mask if
    given), as kept: excerpts, with `key` (the whole text's digest) and `terms` (its distinct words)."""
    top = top_rows(posts, keep, "text", rows)[[*EXAMPLE_COLUMNS, *([keep.per] if keep.per else [])]]
    return top.assign(
        key=top["text"].map(_digest),
        terms=top["text"].map(lambda text: " ".join(sorted(set(words(text))))),
        text=top["text"].map(excerpt),
    ).reset_index(drop=True)


@dataclass
class KeptList:
    """A list kept (`keep`) of posts fed in pieces (each a kept list of some posts: a chunk's, a day's), ranked
    when read: the list of the pieces' posts, since a list of lists is the list of all their posts. Ranking
    once at the end instead of at every chunk and every day saves thousands of small pandas sorts.
    `same`: the column that tells copies of a text apart ("key": the digest examples_of adds)."""

    keep: Keep
    same: str = "key"
    pieces: list[pd.DataFrame] = field(default_factory=list)

    def add(self, piece: pd.DataFrame) -> None:
        if not piece.empty:
            self.pieces.append(piece)
        if len(self.pieces) > SETTLE_AFTER:
            self.rows()

    def merge(self, other: KeptList) -> None:
        for piece in other.pieces:
            self.add(piece)

    def rows(self) -> pd.DataFrame | None:
        """The kept list (None before any post)."""
        if len(self.pieces) > 1:
            merged = top_rows(pd.concat(self.pieces, ignore_index=True), self.keep, self.same)
            self.pieces = [merged.reset_index(drop=True)]
        return self.pieces[0] if self.pieces else None


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
    return top_rows(inside, Keep(keep.size, keep.order), "key")


def top_rows(posts: pd.DataFrame, keep: Keep, same: str, rows: np.ndarray | None = None) -> pd.DataFrame:
    """The first keep.size of posts (of the rows of a mask, if given) in keep.order (per keep.per), each value
    of `same` once (its first)."""
    among = np.arange(len(posts)) if rows is None else np.flatnonzero(rows)
    candidates = posts.iloc[_candidates(posts, keep, same, among)] if len(among) > keep.size else posts.iloc[among]
    ranked = candidates.sort_values(list(keep.order), ascending=list(keep.order.values()), kind="stable")
    if keep.per is None:
        return ranked.drop_duplicates(same).head(keep.size)
    return ranked.drop_duplicates([keep.per, same]).groupby(keep.per, sort=False).head(keep.size)


def _candidates(posts: pd.DataFrame, keep: Keep, same: str, among: np.ndarray) -> np.ndarray:
    """The rows top_rows can keep, found by the leading number and time columns of keep.order alone.

    Per group (keep.per), each value of `same` is ranked by its best rows (ties by those columns all kept:
    the text columns after them decide); the best rows of the first `size` values (and of values tied with the
    last of them) are the candidates. Any other row is a value's lesser copy, which drop_duplicates drops, or
    ranks below the best rows of `size` other values: sorting the candidates gives the rows sorting all gives.
    """
    keys = _rank_keys(posts, keep, among)
    if not keys:
        return among
    grouped = pd.factorize(posts[keep.per].iloc[among], use_na_sentinel=False)[0] if keep.per else None
    groups = np.zeros(len(among), np.int64) if grouped is None else grouped
    order = np.lexsort([*reversed(keys), groups])
    ranked = [key[order] for key in (groups, *keys)]
    runs = np.cumsum(np.concatenate(([True], np.any([key[1:] != key[:-1] for key in ranked], axis=0))))
    values = pd.factorize(posts[same].iloc[among], use_na_sentinel=False)[0][order]
    _, first, pair = np.unique(ranked[0] * (values.max() + 1) + values, return_index=True, return_inverse=True)
    best = runs[first][pair] == runs  # a value's best rows
    first.sort()  # each (group, value)'s first best row, in rank order
    starts = np.searchsorted(ranked[0][first], ranked[0][first], side="left")
    last = first[(np.arange(len(first)) - starts) == keep.size - 1]  # each group's size-th value's
    limit = np.full(len(among), runs[-1])
    limit[ranked[0][last]] = runs[last]
    return among[np.sort(order[best & (runs <= limit[ranked[0]])])]


def _rank_keys(posts: pd.DataFrame, keep: Keep, among: np.ndarray) -> list[np.ndarray]:
    """The leading columns of keep.order that are numbers or times, as arrays that sort ascending in its
    order; none if one of them has a missing value (sort_values puts those last, either way)."""
    keys = []
    for column, ascending in keep.order.items():
        values = posts[column].iloc[among]
        if values.isna().any():
            return []
        if pd.api.types.is_datetime64_any_dtype(values):
            key = values.array.asi8
            keys.append(key if ascending else ~key)
        elif pd.api.types.is_numeric_dtype(values):
            key = values.to_numpy(dtype=float)
            keys.append(key if ascending else -key)
        else:
            break
    return keys


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
