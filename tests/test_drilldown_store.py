"""The drill-down's store reads: a window's top posts (ORDER BY … LIMIT) and its posts streamed, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.posts import Post
from monitor.store import Store

T0 = datetime(2012, 12, 18, 10, tzinfo=UTC)
# (minutes after T0, text, likes, reposts, replies, compound); posts at 60 minutes and later are outside the hour
ROWS = [
    (0, "first, calm", 5, 0, 0, 0.10),
    (5, "angry one", 1, 1, 1, -0.90),
    (10, "most liked", 40, 2, 3, -0.20),
    (15, "copied text", 30, 0, 0, -0.50),
    (20, "copied text", 35, 0, 0, -0.50),  # the same text again (a copy): shown once, as its best
    (25, "no counts at all", None, None, None, -0.95),
    (59, "last minute", 2, 0, 0, 0.50),
    (60, "next hour, very liked and very angry", 999, 0, 0, -0.99),
]


def add_window(store: Store) -> None:
    posts = [
        Post(source="x", id=str(n), created_at=T0 + timedelta(minutes=m), text=text, likes=likes, reposts=reposts,
             replies=replies, author=f"user{n}")
        for n, (m, text, likes, reposts, replies, _) in enumerate(ROWS)
    ]  # fmt: skip
    store.add_posts("e", posts)
    store.add_posts("other", [Post(source="x", id="99", created_at=T0, text="another event", likes=10_000)])
    scores = [
        {"source": "x", "post_id": str(n), "scorer": "k", "status": "scored", "compound": row[-1], "aspects": "ads"}
        for n, row in enumerate(ROWS)
    ]
    scores.append({"source": "x", "post_id": "99", "scorer": "k", "status": "scored", "compound": -1.0, "aspects": ""})
    store.add_scores(scores)


HOUR = (T0, T0 + timedelta(hours=1))


def test_the_most_engaged_posts_of_a_window_come_first_each_text_once(store: Store) -> None:
    add_window(store)
    top = store.window_posts("e", "k", HOUR, "engaged", 3)
    assert [row["text"] for row in top] == ["most liked", "copied text", "first, calm"]
    assert [row["engagement"] for row in top] == [45, 35, 5]
    assert top[1]["post_id"] == "4" and top[1]["created_at"] == T0 + timedelta(minutes=20)  # the copy liked more
    assert top[0]["author"] == "user2" and top[0]["reposts"] == 2


def test_the_most_negative_posts_of_a_window_come_first(store: Store) -> None:
    add_window(store)
    top = store.window_posts("e", "k", HOUR, "negative", 4)
    assert [row["text"] for row in top] == ["no counts at all", "angry one", "copied text", "most liked"]
    assert top[0]["engagement"] == 0 and top[0]["compound"] == -0.95


def test_window_posts_skip_posts_the_scorer_did_not_score(store: Store) -> None:
    add_window(store)
    assert store.window_posts("e", "another-scorer", HOUR, "engaged", 5) == []


def test_a_windows_posts_stream_oldest_first_in_chunks_up_to_its_end(store: Store) -> None:
    add_window(store)
    chunks = list(store.iter_window_posts("e", "k", HOUR, chunk_size=3))
    assert [len(chunk) for chunk in chunks] == [3, 3, 1]
    assert [row["post_id"] for chunk in chunks for row in chunk] == ["0", "1", "2", "3", "4", "5", "6"]
    everything = [row for chunk in store.iter_window_posts("e", "k", (T0, None)) for row in chunk]
    assert len(everything) == 8 and everything[-1]["engagement"] == 999 and everything[-1]["aspects"] == "ads"
