"""Reports from stored per-day sums give the numbers of a full recompute, through every change to posts and scores."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from monitor.analysis import Analysis
from monitor.config import parse_config
from monitor.pipeline import Workspace, analyze_event, open_workspace, score
from monitor.pipeline.analysis_parts import parts_key
from monitor.posts import Post
from monitor.store import Store
from tests.analysis_compare import assert_same_analysis
from tests.companions import RecordingCompanion, lost_companion
from tests.conftest import BASE_CONFIG

EVENT = "instagram-tos-2012"
WORDS = ["love", "great", "awful", "hate", "terrible", "quit", "instagram", "ads", "photos", "sell", "privacy", "fine"]


def make_posts(count: int, first_day: datetime, days: int, seed: int, prefix: str) -> list[Post]:
    """Posts spread over `days` days from first_day, with sentiment words, reposts and a few French ones."""
    rng = random.Random(seed)
    return [
        Post(
            source=rng.choice(["x", "mastodon@example.social"]),
            id=f"{prefix}{i}",
            created_at=first_day + timedelta(minutes=rng.randrange(days * 24 * 60)),
            text=" ".join(rng.choice(WORDS) for _ in range(5)),
            author=rng.choice(["ann", "bob", "cy", None]),
            lang=rng.choice(["en"] * 9 + ["fr"]),
            likes=rng.randrange(20),
            followers=rng.randrange(5000),
            is_repost=rng.random() < 0.2,
        )
        for i in range(count)
    ]


def workspace(store: Store, tmp_path: Path, **changes: Any) -> Workspace:
    """A workspace on the store's database with BASE_CONFIG, its event's settings and other sections changed."""
    event = {**BASE_CONFIG["events"][0], **changes.pop("event", {})}
    document = {**BASE_CONFIG, "database": store.engine.url.render_as_string(hide_password=False), "events": [event]}
    document.update(changes)
    return open_workspace(config=parse_config(document, tmp_path))


def assert_identical(found: Analysis, expected: Analysis) -> None:
    """Every number of the Analysis and of summary.json the same, bit for bit (only generated_at differs)."""
    assert_same_analysis(found, expected, rel=0.0)
    mine, theirs = found.summary(), expected.summary()
    mine.pop("generated_at"), theirs.pop("generated_at")
    assert mine == theirs


def report_matches_full(ws: Workspace) -> Analysis:
    """The incremental analysis, checked against a full recompute of the same store."""
    incremental = analyze_event(ws, EVENT)
    assert_identical(incremental, analyze_event(ws, EVENT, full=True))
    return incremental


def fresh_analysis(tmp_path: Path, posts: list[Post], **changes: Any) -> Analysis:
    """The analysis of the same posts stored in one go in a new SQLite store and scored there."""
    folder = tmp_path / f"fresh-{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    from monitor.store import open_store

    store = open_store(f"sqlite:///{folder / 'fresh.db'}")
    ws = workspace(store, folder, **changes)
    ws.store.add_posts(EVENT, posts)
    score(ws, workers=1)
    analysis = analyze_event(ws, EVENT, full=True)
    ws.close()
    return analysis


def stale_days(ws: Workspace) -> list[str]:
    parts = ws.store.analysis_parts(EVENT) or {}
    return sorted(day for day, part in parts.items() if part.state_version != part.version)


def test_posts_added_in_steps_give_the_numbers_of_a_full_recompute(store: Store, tmp_path: Path) -> None:
    ws = workspace(store, tmp_path)
    first = make_posts(400, datetime(2012, 12, 10, tzinfo=UTC), 12, seed=1, prefix="a")
    ws.store.add_posts(EVENT, first)
    score(ws, workers=1)
    before = report_matches_full(ws)
    assert before.coverage.posts == 400 and stale_days(ws) == []

    later = make_posts(150, datetime(2012, 12, 21, 12, tzinfo=UTC), 1, seed=2, prefix="b")  # the last day and a new one
    ws.store.add_posts(EVENT, later)
    assert stale_days(ws) == ["2012-12-21", "2012-12-22"]  # only the days the new posts fall on
    unscored = report_matches_full(ws)
    assert (unscored.coverage.posts, unscored.coverage.unscored) == (550, 150)

    score(ws, workers=1)
    assert stale_days(ws) == ["2012-12-21", "2012-12-22"]  # scores mark the days of their posts
    scored = report_matches_full(ws)
    assert scored.coverage.unscored == 0 and scored.coverage.scored > before.coverage.scored
    assert_identical(scored, fresh_analysis(tmp_path, first + later))
    ws.close()


def test_a_post_removed_from_the_event_leaves_its_numbers(store: Store, tmp_path: Path) -> None:
    ws = workspace(store, tmp_path)
    posts = make_posts(300, datetime(2012, 12, 12, tzinfo=UTC), 8, seed=3, prefix="c")
    ws.store.add_posts(EVENT, posts)
    ws.store.add_posts("other-event", posts[:5])  # the removed post stays in another event
    score(ws, workers=1)
    report_matches_full(ws)
    gone = posts[0]
    assert ws.store.unlink_posts(EVENT, [(gone.source, gone.id)]) == 1
    assert stale_days(ws) == [gone.created_at.date().isoformat()]
    after = report_matches_full(ws)
    assert after.coverage.posts == 299 and ws.store.post_count("other-event") == 5
    assert_identical(after, fresh_analysis(tmp_path, posts[1:]))
    ws.close()


LEXICON = {"scoring": {"lexicon": {"ads": -3.0, "photos": 2.0}}}
MOVED = {"event": {"milestones": {"announced": "2012-12-18", "reversed": "2012-12-20", "effective": "2013-01-16"}}}


@pytest.mark.parametrize("changes", [LEXICON, MOVED], ids=["lexicon changed, rescored", "milestone moved"])
def test_a_settings_change_recomputes_every_day(store: Store, tmp_path: Path, changes: dict[str, Any]) -> None:
    ws = workspace(store, tmp_path)
    posts = make_posts(300, datetime(2012, 12, 10, tzinfo=UTC), 12, seed=4, prefix="d")
    ws.store.add_posts(EVENT, posts)
    score(ws, workers=1)
    old = report_matches_full(ws)
    days = len(ws.store.analysis_parts(EVENT) or {})
    ws.close()
    assert days >= 12  # 300 posts over 12 days: every day stored
    changed = workspace(store, tmp_path, **changes)
    key = parts_key(changed, changed.config.events[0])
    stale = changed.store.analysis_parts(EVENT) or {}
    assert len(stale) == days and not any(part.current(key) for part in stale.values())
    rescoring = "scoring" in changes  # a new scorer key: no post is scored by it yet
    assert report_matches_full(changed).coverage.unscored == (300 if rescoring else 0)
    recomputed = changed.store.analysis_parts(EVENT) or {}
    assert len(recomputed) == days and all(part.current(key) for part in recomputed.values())
    score(changed, workers=1)
    new = report_matches_full(changed)
    assert new.totals != old.totals
    assert_identical(new, fresh_analysis(tmp_path, posts, **changes))
    changed.close()


def test_a_database_filled_before_the_day_parts_is_listed_at_its_first_report(store: Store, tmp_path: Path) -> None:
    ws = workspace(store, tmp_path)
    posts = make_posts(200, datetime(2012, 12, 14, tzinfo=UTC), 4, seed=6, prefix="f")
    ws.store.add_posts(EVENT, posts)
    score(ws, workers=1)
    with ws.store.engine.begin() as conn:  # as an older version left it: posts, no day rows
        conn.exec_driver_sql("DELETE FROM analysis_parts")
        conn.exec_driver_sql("DELETE FROM analysis_events")
    assert ws.store.analysis_parts(EVENT) is None
    analysis = report_matches_full(ws)
    assert analysis.coverage.posts == 200
    assert sorted(ws.store.analysis_parts(EVENT) or {}) == ["2012-12-14", "2012-12-15", "2012-12-16", "2012-12-17"]
    assert_identical(analysis, fresh_analysis(tmp_path, posts))
    ws.close()


def test_day_bins_in_a_far_zone_straddle_utc_days_and_still_add_up(store: Store, tmp_path: Path) -> None:
    ws = workspace(store, tmp_path, event={"bin": "day"}, timezone="Pacific/Auckland")
    posts = make_posts(300, datetime(2012, 12, 12, tzinfo=UTC), 6, seed=7, prefix="g")
    ws.store.add_posts(EVENT, posts[:200])
    score(ws, workers=1)
    report_matches_full(ws)
    ws.store.add_posts(EVENT, posts[200:])
    score(ws, workers=1)
    analysis = report_matches_full(ws)
    assert int(analysis.bins["volume"].sum()) == analysis.coverage.posts == 300
    assert all(pd.Timestamp(start).tz_convert("Pacific/Auckland").hour == 0 for start in analysis.bins.index)
    ws.close()


def test_a_day_is_marked_in_the_transaction_of_its_write_and_a_state_read_before_a_write_stays_stale(
    store: Store,
) -> None:
    from dataclasses import replace

    from monitor.errors import StoreError

    store.mark_listed("e")
    posts = make_posts(4, datetime(2012, 12, 18, 23, 58, tzinfo=UTC), 1, seed=8, prefix="h")
    broken = replace(posts[0], id="broken", text=None)  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        store.add_posts("e", [*posts, broken])
    assert store.analysis_parts("e") == {}  # the batch was rolled back, and its marks with it
    store.add_posts("e", posts)
    days = {post.created_at.date().isoformat() for post in posts}
    parts = store.analysis_parts("e") or {}
    assert set(parts) == days and {part.version for part in parts.values()} == {1}
    day = min(days)
    read = replace(parts[day], fingerprint="f")
    store.save_analysis_state("e", day, read, b"state")  # computed at version 1...
    assert (store.analysis_parts("e") or {})[day].current("f")
    with pytest.raises(StoreError):
        store.add_scores([{"source": posts[0].source, "post_id": posts[0].id, "scorer": "k", "status": None}])
    assert (store.analysis_parts("e") or {})[day].current("f")
    scores = [{"source": post.source, "post_id": post.id, "scorer": "k", "status": "scored"} for post in posts]
    store.add_scores(scores)  # ...and a score written after it makes it stale
    assert not (store.analysis_parts("e") or {})[day].current("f")
    assert store.analysis_state("e", day) == b"state"


def test_the_full_read_cut_into_days_gives_the_frames_of_day_reads(store: Store) -> None:
    from monitor.pipeline.analysis_parts import day_pieces, day_span

    posts = make_posts(60, datetime(2012, 12, 18, 20, tzinfo=UTC), 1, seed=9, prefix="i")  # the 18th and the 19th
    store.add_posts("e", posts)
    store.add_scores([{"source": p.source, "post_id": p.id, "scorer": "k", "status": "scored", "compound": -0.5}
                      for p in posts[::3]])  # fmt: skip
    regrouped = {day: list(frames) for day, frames in day_pieces(store.iter_analysis_frames("e", "k", 7), 5)}
    assert sorted(regrouped) == ["2012-12-18", "2012-12-19"]
    for day, frames in regrouped.items():
        expected = list(store.iter_analysis_frames("e", "k", 5, *day_span(day)))
        assert [len(frame) for frame in frames] == [len(frame) for frame in expected]
        for found, wanted in zip(frames, expected, strict=True):
            pd.testing.assert_frame_equal(_plain(found), _plain(wanted))
    assert sum(len(frame) for frames in regrouped.values() for frame in frames) == 60


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Values as Python objects, None where missing: a column read without a value is None or NaN by its chunk."""
    return frame.astype(object).where(frame.notna(), None)


def posts_on(day: int, count: int, prefix: str) -> list[Post]:
    return make_posts(count, datetime(2012, 12, day, tzinfo=UTC), 1, seed=day, prefix=prefix)


def test_the_later_days_with_nearest_their_share_of_the_posts_to_read_go_to_the_second_process(
    store: Store, tmp_path: Path
) -> None:
    from monitor.pipeline.analysis_parts import SHARE, halves, shares

    assert SHARE == 0.40  # the numbers below are worked for it

    ws = workspace(store, tmp_path)
    ws.store.add_posts(EVENT, posts_on(12, 100, "a") + posts_on(13, 100, "b") + posts_on(14, 300, "c"))
    days = ["2012-12-12", "2012-12-13", "2012-12-14"]
    assert shares(ws, days, shared_from=500) == (days[:2], days[2:])  # 300 of 500 on the 14th: nearest SHARE's 200
    assert shares(ws, days[:2], shared_from=200) == (days[:1], days[1:2])
    assert shares(ws, days, shared_from=501) == (days, [])  # too few posts to start a process for
    middle = datetime(
        2012, 12, 14
    )  # 200 of 500 after the cut: the 14th's midnight (300 after) is nearer than the 15th's (0)
    assert halves(ws, shared_from=500) == ([(None, middle)], [(middle, None)])
    assert halves(ws, shared_from=501) == ([(None, None)], [])
    ws.close()


def shared(ws: Workspace, full: bool, shared_from: int | None) -> tuple[Analysis, list[str]]:
    """The event's analysis and the jobs asked of the companion; with shared_from, the later days to read
    summed by a companion process if they hold that many posts; with None, no companion."""
    from monitor.pipeline.analysis_parts import accumulate_event
    from monitor.pipeline.report import finish_analysis

    event = ws.config.events[0]
    if shared_from is None:
        return finish_analysis(ws, EVENT, accumulate_event(ws, event, full=full)), []
    with RecordingCompanion() as companion:
        return finish_analysis(ws, EVENT, accumulate_event(ws, event, full, companion, shared_from)), companion.asked


def test_days_are_read_here_when_the_companion_process_is_lost(store: Store, tmp_path: Path) -> None:
    from monitor.pipeline.analysis_parts import accumulate_event
    from monitor.pipeline.report import finish_analysis

    ws = workspace(store, tmp_path)
    ws.store.add_posts(EVENT, make_posts(600, datetime(2012, 12, 10, tzinfo=UTC), 12, seed=10, prefix="p"))
    score(ws, workers=1)
    with lost_companion() as companion:
        lost = finish_analysis(ws, EVENT, accumulate_event(ws, ws.config.events[0], True, companion, shared_from=0))
    assert companion.asked == ["day_states"]  # the later days were asked of it, and read here when it failed
    assert stale_days(ws) == [] and len(ws.store.analysis_parts(EVENT) or {}) == 12  # the lost days stored too
    assert_identical(lost, shared(ws, full=True, shared_from=None)[0])
    ws.close()


def test_days_summed_in_a_second_process_give_the_numbers_of_one_process(store: Store, tmp_path: Path) -> None:
    ws = workspace(store, tmp_path)
    ws.store.add_posts(EVENT, make_posts(600, datetime(2012, 12, 10, tzinfo=UTC), 12, seed=10, prefix="p"))
    score(ws, workers=1)
    first, asked = shared(ws, full=True, shared_from=0)
    assert asked == ["day_states"]  # the later days went to the companion...
    assert stale_days(ws) == [] and len(ws.store.analysis_parts(EVENT) or {}) == 12  # ...and both halves' days stored
    alone, _ = shared(ws, full=True, shared_from=None)
    assert_identical(first, alone)
    few, asked = shared(ws, full=True, shared_from=10**9)
    assert asked == [] and few.coverage.posts == 600  # a companion, but too few posts for it
    assert_identical(few, alone)
    ws.store.add_posts(EVENT, make_posts(200, datetime(2012, 12, 12, tzinfo=UTC), 8, seed=11, prefix="q"))
    score(ws, workers=1)
    assert len(stale_days(ws)) == 8
    incremental, asked = shared(ws, full=False, shared_from=0)  # stale days of both halves, stored days between them
    assert asked == ["day_states"]
    assert stale_days(ws) == [] and incremental.coverage.posts == 800
    assert_identical(incremental, shared(ws, full=True, shared_from=None)[0])
    ws.close()
