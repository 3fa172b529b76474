"""The drill-down's read: the texts of an event's scored posts of a span streamed oldest first (SQLite and
PostgreSQL), and the bounded, mergeable lists of example posts the analysis keeps (monitor/examples.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from monitor.analysis import tokens
from monitor.examples import BY_ENGAGEMENT, BY_NEGATIVITY, Keep, KeptList, examples_of
from monitor.posts import Post
from monitor.store import Store

T0 = datetime(2012, 12, 18, 10, tzinfo=UTC)
# (minutes after T0, text, likes, reposts, replies, compound); posts at 60 minutes and later are outside the hour
ROWS = [
    (0, "first, calm", 5, 0, 0, 0.10),
    (5, "angry one", 1, 1, 1, -0.90),
    (10, "most liked", 40, 2, 3, -0.20),
    (15, "copied text", 30, 0, 0, -0.50),
    (20, "copied text", 35, 0, 0, -0.50),  # the same text again (a copy)
    (25, "no counts at all", None, None, None, -0.95),
    (59, "last minute", 2, 0, 0, 0.50),
    (60, "next hour, very liked and very angry", 999, 0, 0, -0.99),
]
HOUR = (T0, T0 + timedelta(hours=1))


def add_window(store: Store) -> None:
    posts = [
        Post(source="x", id=str(n), created_at=T0 + timedelta(minutes=m), text=text, likes=likes, reposts=reposts,
             replies=replies, author=f"user{n}")
        for n, (m, text, likes, reposts, replies, _) in enumerate(ROWS)
    ]  # fmt: skip
    store.add_posts("e", list(reversed(posts)))
    store.add_posts("other", [Post(source="x", id="99", created_at=T0, text="another event", likes=10_000)])
    store.add_posts("e", [Post(source="x", id="unscored", created_at=T0, text="not scored yet")])
    scores = [
        {"source": "x", "post_id": str(n), "scorer": "k", "status": "scored", "compound": row[-1], "aspects": "ads"}
        for n, row in enumerate(ROWS)
    ]
    scores.append({"source": "x", "post_id": "99", "scorer": "k", "status": "scored", "compound": -1.0, "aspects": ""})
    store.add_scores(scores)


def window(store: Store, span: tuple[datetime, datetime | None], chunk_size: int = 20_000) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in store.iter_window_texts("e", "k", span, chunk_size):
        assert len(chunk) <= chunk_size
        for text, posts in chunk:
            assert text not in found  # each text once
            found[text] = posts
    return found


def test_a_spans_scored_posts_come_as_their_texts_each_with_its_number_of_posts(store: Store) -> None:
    add_window(store)
    hour = {"first, calm": 1, "angry one": 1, "most liked": 1, "copied text": 2, "no counts at all": 1, "last minute": 1}
    assert window(store, HOUR, chunk_size=2) == hour  # the 7 posts of the hour, the copy counted twice
    assert window(store, (T0 + timedelta(minutes=59), None)) == {"last minute": 1, "next hour, very liked and very angry": 1}
    assert sum(window(store, (T0, None)).values()) == 8  # neither the other event's post nor the unscored one


def test_posts_another_scorer_scored_are_not_in_the_span(store: Store) -> None:
    add_window(store)
    assert list(store.iter_window_texts("e", "another-scorer", HOUR)) == []


def posts(numbers: range = range(len(ROWS))) -> pd.DataFrame:
    """ROWS as the analysis feeds them (engagement = likes + reposts + replies, a missing count as 0)."""
    return pd.DataFrame([
        {"source": "x", "post_id": str(n), "created_at": T0 + timedelta(minutes=ROWS[n][0]), "author": None,
         "text": ROWS[n][1], "url": None, "compound": ROWS[n][5], "reposts": ROWS[n][3] or 0,
         "engagement": sum(count or 0 for count in ROWS[n][2:5])}
        for n in numbers
    ])  # fmt: skip


def kept(keep: Keep, *parts: range) -> list[str]:
    """The list kept of ROWS fed in parts (as days are), each part's list merged into the others'."""
    total = KeptList(keep)
    for part in parts:
        day = KeptList(keep)
        day.add(examples_of(posts(part), keep, tokens))
        total.merge(day)
    rows = total.rows()
    assert rows is not None
    return [f"{row.post_id} {row.text}" for row in rows.itertuples()]


def test_the_most_engaged_are_kept_each_text_once_the_best_copy() -> None:
    expected = ["7 next hour, very liked and very angry", "2 most liked", "4 copied text"]
    assert kept(Keep(3, BY_ENGAGEMENT), range(8)) == expected
    assert kept(Keep(3, BY_ENGAGEMENT), range(4), range(4, 8)) == expected  # the copies in different parts
    assert kept(Keep(3, BY_ENGAGEMENT), range(4, 8), range(4)) == expected


def test_the_most_negative_are_kept_the_more_engaged_first_among_equals() -> None:
    expected = ["7 next hour, very liked and very angry", "5 no counts at all", "1 angry one", "4 copied text"]
    assert kept(Keep(4, BY_NEGATIVITY), range(8)) == expected
    assert kept(Keep(4, BY_NEGATIVITY), range(0, 8, 2), range(1, 8, 2)) == expected


def test_among_equals_the_earlier_post_is_kept() -> None:
    frame = pd.DataFrame([
        {"source": "x", "post_id": str(n), "created_at": T0 + timedelta(minutes=2 - n), "author": None,
         "text": f"t{n}", "url": None, "compound": 0.0, "engagement": 7, "reposts": 0}
        for n in range(3)
    ])  # fmt: skip
    assert examples_of(frame, Keep(1), tokens)["post_id"].tolist() == ["2"]  # the earliest


def test_a_kept_text_is_an_excerpt_with_its_terms_and_copies_are_told_by_the_whole_text() -> None:
    long = "photos " * 60
    frame = posts(range(2)).assign(text=[long + "alpha", long + "beta"])
    found = examples_of(frame, Keep(5), tokens)
    assert len(found) == 2 and found["key"].nunique() == 2  # the same first 280 characters, two texts
    assert all(len(text) <= 280 and text.endswith("…") for text in found["text"])
    assert found["terms"].tolist() == ["alpha photos", "beta photos"]


def test_a_scored_row_without_a_compound_is_not_in_the_span_as_the_analysis_does_not_count_it(store: Store) -> None:
    add_window(store)
    store.add_posts("e", [Post(source="x", id="no-compound", created_at=T0, text="scored without a number")])
    store.add_scores([{"source": "x", "post_id": "no-compound", "scorer": "k", "status": "scored", "compound": None}])
    assert "scored without a number" not in window(store, HOUR)


def test_a_span_is_cut_into_the_utc_days_wholly_inside_it_and_inside_the_window_and_the_rest() -> None:
    from monitor.drilldown import outside_days, whole_days

    span = (datetime(2012, 12, 17, 18, tzinfo=UTC), datetime(2012, 12, 21, 6, tzinfo=UTC))
    assert whole_days(span, (None, None)) == ["2012-12-18", "2012-12-19", "2012-12-20"]
    window = (datetime(2012, 12, 10, tzinfo=UTC), datetime(2012, 12, 20, 12, tzinfo=UTC))  # ends inside the 20th
    assert whole_days(span, window) == ["2012-12-18", "2012-12-19"]
    assert outside_days(span, ["2012-12-18", "2012-12-19"]) == [
        (span[0], datetime(2012, 12, 18, tzinfo=UTC)), (datetime(2012, 12, 20, tzinfo=UTC), span[1])
    ]  # fmt: skip
    assert outside_days(span, ["2012-12-19"]) == [
        (span[0], datetime(2012, 12, 19, tzinfo=UTC)), (datetime(2012, 12, 20, tzinfo=UTC), span[1])
    ]  # fmt: skip
    hour = (datetime(2012, 12, 18, 10, tzinfo=UTC), datetime(2012, 12, 18, 11, tzinfo=UTC))
    assert whole_days(hour, (None, None)) == [] and outside_days(hour, []) == [hour]
    midnights = (datetime(2012, 12, 18, tzinfo=UTC), datetime(2012, 12, 19, tzinfo=UTC))
    assert whole_days(midnights, (None, None)) == ["2012-12-18"] and outside_days(midnights, ["2012-12-18"]) == []
