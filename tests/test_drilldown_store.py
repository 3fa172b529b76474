"""The drill-down's read: an event's scored posts of a span streamed oldest first (SQLite and PostgreSQL), and the
bounded lists it keeps of them (TopPosts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.drilldown import TopPosts, by_engagement, by_negativity
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


def window(store: Store, span: tuple[datetime, datetime | None], chunk_size: int = 20_000) -> list[dict[str, Any]]:
    return [row for chunk in store.iter_window_posts("e", "k", span, chunk_size) for row in chunk]


def test_a_spans_scored_posts_of_the_event_stream_oldest_first_up_to_its_end(store: Store) -> None:
    add_window(store)
    chunks = list(store.iter_window_posts("e", "k", HOUR, chunk_size=3))
    assert [len(chunk) for chunk in chunks] == [3, 3, 1]
    assert [row["post_id"] for chunk in chunks for row in chunk] == ["0", "1", "2", "3", "4", "5", "6"]
    first = chunks[0][2]
    assert (first["text"], first["author"], first["engagement"], first["reposts"]) == ("most liked", "user2", 45, 2)
    assert first["compound"] == -0.2 and first["aspects"] == "ads"
    assert first["created_at"].replace(tzinfo=UTC) == T0 + timedelta(minutes=10)  # naive UTC, as stored
    assert chunks[1][2]["engagement"] == 0  # no counts at all: 0, as the analysis counts them
    everything = window(store, (T0 + timedelta(minutes=59), None))
    assert [row["post_id"] for row in everything] == ["6", "7"]
    assert len(window(store, (T0, None))) == 8  # neither the other event's post nor the unscored one


def test_posts_another_scorer_scored_are_not_in_the_span(store: Store) -> None:
    add_window(store)
    assert list(store.iter_window_posts("e", "another-scorer", HOUR)) == []


def feed(top: TopPosts) -> list[str]:
    for n, (minute, text, likes, reposts, replies, compound) in enumerate(ROWS):
        engagement = (likes or 0) + (reposts or 0) + (replies or 0)
        top.push({"source": "x", "post_id": str(n), "created_at": T0 + timedelta(minutes=minute), "author": None,
                  "text": text, "url": None, "compound": compound, "engagement": engagement, "reposts": reposts})  # fmt: skip
    return [f"{example.post_id} {example.text}" for example in top.examples()]


def test_the_most_engaged_are_kept_each_text_once_the_best_copy() -> None:
    assert feed(TopPosts(3, by_engagement)) == ["7 next hour, very liked and very angry", "2 most liked", "4 copied text"]


def test_the_most_negative_are_kept_the_more_engaged_first_among_equals() -> None:
    assert feed(TopPosts(4, by_negativity)) == [
        "7 next hour, very liked and very angry", "5 no counts at all", "1 angry one", "4 copied text",
    ]  # fmt: skip


def test_among_equals_the_earlier_post_is_kept() -> None:
    top = TopPosts(1, by_engagement)
    for n in range(3):
        top.push({"source": "x", "post_id": str(n), "created_at": T0, "author": None, "text": f"t{n}", "url": None,
                  "compound": 0.0, "engagement": 7, "reposts": 0})  # fmt: skip
    assert [example.post_id for example in top.examples()] == ["0"]
