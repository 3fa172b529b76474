"""Example posts the analysis keeps for the page's drill-down, so the drill-down reads only the spikes' posts.

Each list holds the `keep` most engaged posts fed to it, each text once (its most engaged copy; among equals
the earliest, then by source and id: a total order). Such a list of a day merged with another day's is the
list of both days, exactly: a text among the top of all posts is among the top of its own day's posts. So
the per-day parts of the analysis keep these lists, and an incremental report gives the lists of a full one.
Texts are kept as excerpts (EXCERPT characters), with a digest of the whole text (copies are told by it)
and the text's terms (analysis.tokens of the whole text), so memory stays `keep` short rows.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

EXAMPLE_POOL = 300  # the most engaged negative posts since the announcement: the driver terms' examples come from these
TERM_EXAMPLES = 3  # posts per driver term and per aspect
EXCERPT = 280  # characters of a post shown; a longer text is cut at a word and ends in "…"
EXAMPLE_COLUMNS = ["created_at", "source", "post_id", "author", "text", "url", "compound", "engagement", "reposts"]
_ORDER = {"engagement": False, "created_at": True, "source": True, "post_id": True}


@dataclass
class DrillSums:
    """What the analysis hands the drill-down besides its numbers (never in summary.json)."""

    reference: Counter[str] = field(default_factory=Counter)  # terms of scored baseline posts (TermCounts.reference)
    prior: Counter[str] = field(default_factory=Counter)  # terms of every scored post of the window
    negative: pd.DataFrame | None = None  # the EXAMPLE_POOL most engaged negative posts since the announcement
    aspects: dict[str, pd.DataFrame | None] = field(default_factory=dict)  # aspect → its TERM_EXAMPLES posts


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """The text on one line (runs of spaces and line breaks as one space); past the limit, cut at the last
    space before it, with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip() + "…"


def examples_of(posts: pd.DataFrame, keep: int, words: Callable[[str], list[str]]) -> pd.DataFrame:
    """The `keep` most engaged of posts (EXAMPLE_COLUMNS, whole texts), each text once, as kept: excerpts,
    with `key` (the whole text's digest) and `terms` (its distinct words, space-separated)."""
    top = _ranked(posts[EXAMPLE_COLUMNS]).drop_duplicates("text").head(keep)
    return top.assign(
        key=top["text"].map(_digest),
        terms=top["text"].map(lambda text: " ".join(sorted(set(words(text))))),
        text=top["text"].map(excerpt),
    ).reset_index(drop=True)


def merged_examples(mine: pd.DataFrame | None, other: pd.DataFrame | None, keep: int) -> pd.DataFrame | None:
    """The `keep` most engaged of two kept lists, each text once."""
    if mine is None or other is None:
        return other if mine is None else mine
    return _ranked(pd.concat([mine, other], ignore_index=True)).drop_duplicates("key").head(keep).reset_index(drop=True)


def with_term(kept: pd.DataFrame | None, term: str, keep: int = TERM_EXAMPLES) -> pd.DataFrame | None:
    """The `keep` most engaged of a kept list whose text has the term."""
    if kept is None:
        return None
    return kept[kept["terms"].str.split().map(lambda terms: term in terms)].head(keep)


def _ranked(posts: pd.DataFrame) -> pd.DataFrame:
    return posts.sort_values(list(_ORDER), ascending=list(_ORDER.values()), kind="stable")


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
