"""The simulated source: deterministic for a seed, shaped like the Instagram 2012 backlash, labelled simulated."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

from monitor.config import Config
from monitor.posts import FUTURE_SLACK
from monitor.sources import source_class
from monitor.sources.simulated import SimulatedSource, simulate


def test_same_seed_same_posts_other_seed_other_posts(config: Config) -> None:
    event = config.events[0]
    first, again = simulate(event, config, seed=7, posts=800), simulate(event, config, seed=7, posts=800)
    other = simulate(event, config, seed=8, posts=800)
    assert [(p.id, p.created_at, p.text, p.author) for p in first] == [
        (p.id, p.created_at, p.text, p.author) for p in again
    ]
    assert [p.text for p in first] != [p.text for p in other]
    assert len(first) == 800


def test_storm_after_announcement_is_louder_and_angrier_than_the_baseline(config: Config) -> None:
    posts = simulate(config.events[0], config)
    per_day = Counter(post.created_at.date() for post in posts)
    baseline_days = [day for day in per_day if day < datetime(2012, 12, 17).date()]
    baseline = sum(per_day[day] for day in baseline_days) / len(baseline_days)
    assert len(baseline_days) == 7
    assert per_day[datetime(2012, 12, 18).date()] > 10 * baseline  # the storm
    assert per_day[datetime(2013, 1, 16).date()] > 3 * baseline  # the smaller wave on the effective date
    storm = [
        p for p in posts if datetime(2012, 12, 17, tzinfo=UTC) <= p.created_at < datetime(2012, 12, 20, tzinfo=UTC)
    ]
    kinds = Counter(json.loads(p.raw or "{}")["kind"] for p in storm)
    assert kinds["angry"] + kinds["churn"] > 0.3 * len(storm)
    assert any("#boycottinstagram" in p.text for p in storm)


def test_posts_look_like_collected_posts(config: Config) -> None:
    posts = simulate(config.events[0], config)
    assert all(p.source == "simulated" and json.loads(p.raw or "{}")["simulated"] for p in posts)
    assert [p.created_at for p in posts] == sorted(p.created_at for p in posts)
    reposts = [p for p in posts if p.is_repost]
    by_id = {p.id: p for p in posts}
    assert 0.1 < len(reposts) / len(posts) < 0.4
    assert all(by_id[r.repost_of].text == r.text and not by_id[r.repost_of].is_repost for r in reposts if r.repost_of)
    assert {p.lang for p in posts} >= {"en", "es", "de"}
    followers = sorted(p.followers or 0 for p in posts)
    assert followers[len(followers) // 2] < 500 < 100_000 < followers[-1]  # heavy-tailed


def test_source_yields_pages_and_resumes_from_its_cursor(config: Config) -> None:
    source = source_class("simulated").from_config(config)
    assert isinstance(source, SimulatedSource) and source.name == "simulated"
    pages = list(source.search(config.events[0], {}))
    assert sum(len(page.posts) for page in pages) == source.posts
    assert pages[-1].cursor == {"position": str(source.posts)}
    assert list(source.search(config.events[0], pages[-1].cursor)) == []
    resumed = list(source.search(config.events[0], pages[0].cursor))
    assert resumed[0].posts[0].id == pages[1].posts[0].id


def test_an_ongoing_event_is_simulated_up_to_now_never_into_the_future(config: Config) -> None:
    today = datetime.now(UTC).date()
    event = config.events[0].model_copy(update={"milestones": {"announced": today}, "align_on": "announced"})
    posts = simulate(event, config, posts=2000)
    assert posts and max(post.created_at for post in posts) <= datetime.now(UTC) + FUTURE_SLACK
    assert [post.id for post in posts] == [post.id for post in simulate(event, config, posts=2000)][: len(posts)]
