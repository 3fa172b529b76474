"""Posts stored per second by `collect` from the fake Reddit (through PRAW), and the requests a run takes.

The fake runs in its own process. Two feeds, each measured as `source` (RedditSource.search: PRAW,
retry wrapper, normalisation, nothing stored) and `collect` (the same plus SQLite writes of every page
with its cursor):
  thread   one announcement thread of `--size` comments: the thread read (500 shown), then
           /api/morechildren for the hidden ones, 100 a request;
  search   `--size` submissions found by the site-wide search, 100 a page (Reddit stops at ~1,000;
           the fake does not).
`--latency 0.3` makes the fake answer like the real API, which takes a few hundred ms per request.

    python benchmarks/collect_reddit.py --size 20000
    python benchmarks/collect_reddit.py --size 3000 --latency 0.3
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def serve(size: int, latency: float, conn: Connection) -> None:
    """The fake Reddit with a thread of `size` comments and `size` submissions, until the parent is done."""
    from tests.fake_reddit import FakeReddit

    class SlowReddit(FakeReddit):
        def answer(self, *args: Any) -> Any:
            time.sleep(latency)
            return super().answer(*args)

    with SlowReddit() as reddit:
        reddit.rate_remaining = 1e9
        reddit.listing_cap = 10 * size  # the real one stops near 1,000; here the paging itself is measured
        link = reddit.add_submission("bench", "Instagram terms megathread")
        reddit.add_comments(link, size)
        for number in range(size):
            reddit.add_submission(f"sub{number % 10}", f"Instagram terms {number}")
        conn.send((reddit.url, link))
        while conn.recv() == "count":
            conn.send(len(reddit.served))


def config_for(url: str, folder: Path, feed: str, link: str, size: int) -> Any:
    from monitor.config import parse_config

    follow: dict[str, Any] = {"threads": {"bench": [link]}} if feed == "thread" else {"search": True}
    document = {
        "database": f"sqlite:///{folder / 'bench.db'}",
        "events": [
            {
                "name": "bench",
                "platform": "Instagram",
                "milestones": {"announced": "2012-12-17"},
                "follow_days": 365,
                "query": "instagram terms",
                "sources": ["reddit"],
            }
        ],
        "sources": {
            "reddit": {
                "user_agent": "python:org.example.backlash-bench:1.0",
                "oauth_url": url,
                "reddit_url": url,
                "max_more_requests": size // 100 + 10,
                "max_posts_per_run": 10 * size,
                **follow,
            }
        },
    }
    return parse_config(document, folder)


def source_only(config: Any) -> int:
    from monitor.sources.reddit import RedditSource

    source = RedditSource.from_config(config)
    posts = sum(len(page.posts) for page in source.search(config.events[0], {}))
    source.close()
    return posts


def full_collect(config: Any) -> int:
    from monitor.pipeline import collect, open_workspace

    ws = open_workspace(config=config)
    try:
        (outcome,) = collect(ws).outcomes
        assert outcome.status == "ok", outcome.message
        return outcome.new
    finally:
        ws.close()


def requests_so_far(conn: Connection) -> int:
    conn.send("count")
    count: int = conn.recv()
    return count


def timed(label: str, run: Any, expected: int, conn: Connection) -> None:
    before = requests_so_far(conn)
    started = time.perf_counter()
    posts = run()
    seconds = time.perf_counter() - started
    asked = requests_so_far(conn) - before
    assert posts == expected, f"{label}: {posts} posts, expected {expected}"
    print(f"{label:<16} {posts:>8} posts in {seconds:6.2f}s = {posts / seconds:8.0f} posts/s, {asked} requests")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20_000, help="comments in the thread, submissions found (20000)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the fake adds to each answer (e.g. 0.3)")
    arguments = parser.parse_args()
    size, latency = arguments.size, arguments.latency
    os.environ["REDDIT_CLIENT_ID"] = "fake-client-id"
    os.environ["REDDIT_CLIENT_SECRET"] = "reddit-client-secret-0123456789"
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(size, latency, child), daemon=True)
    server.start()
    url, link = parent.recv()
    try:
        with tempfile.TemporaryDirectory() as temporary:
            folder = Path(temporary)
            print(f"fake Reddit at {url}: {size} comments, {size} submissions, +{latency}s per answer")
            for feed, expected in (("thread", size + 1), ("search", size + 1)):
                for label, run in (("source", source_only), ("collect", full_collect)):
                    config = config_for(url, folder / f"{feed}-{label}", feed, link, size)
                    timed(f"{feed} {label}", lambda config=config, run=run: run(config), expected, parent)
            hidden = max(0, size - 500)
            print(f"a thread of {size} comments costs 1 + ceil({hidden}/100) = {1 + math.ceil(hidden / 100)} requests")
    finally:
        parent.send("done")
        server.join(timeout=10)


if __name__ == "__main__":
    main()
