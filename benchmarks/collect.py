"""Posts stored per second by `collect` from the fake X API (100-post pages), against the page-fetch rate alone.

The fake API runs in its own process so it does not share the collector's interpreter lock. Three
measurements on the same server and posts:
  raw fetch   requests + JSON decoding only, following next_token: the ceiling the network path allows;
  source      XSource.search: tweepy, retry wrapper and normalisation to Post, nothing stored;
  collect     pipeline.collect: all of the above plus SQLite writes of every page with its cursor.
If `collect` is close to `raw fetch`, the collector is network-bound; if far below, CPU-bound.
`--latency 0.3` makes the fake answer like a distant API (X takes a few hundred ms per page).

    python benchmarks/collect.py --size 20000
    python benchmarks/collect.py --size 5000 --latency 0.3
"""

from __future__ import annotations

import argparse
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

TOKEN = "benchmark-bearer-token"


def serve(size: int, latency: float, conn: Connection) -> None:
    """The fake X API with `size` posts, in a child process, until the parent says it is done."""
    from tests.fake_x_api import FakeXApi, make_tweets

    with FakeXApi(token=TOKEN, latency=latency) as api:
        api.add_tweets(make_tweets(size))
        conn.send(api.url)
        conn.recv()  # blocks until the parent is done


def raw_fetch(url: str) -> int:
    """Follow next_token with requests alone; return posts fetched."""
    import requests

    session = requests.Session()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    params: dict[str, Any] = {"query": "instagram", "max_results": 100}
    posts = 0
    while True:
        body = session.get(f"{url}/2/tweets/search/recent", params=params, headers=headers, timeout=30).json()
        posts += len(body.get("data", []))
        token = body.get("meta", {}).get("next_token")
        if token is None:
            return posts
        params["next_token"] = token


def config_for(url: str, folder: Path, size: int) -> Any:
    from monitor.config import parse_config

    document = {
        "database": f"sqlite:///{folder / 'bench.db'}",
        "events": [
            {
                "name": "bench",
                "platform": "Instagram",
                "milestones": {"announced": "2012-12-17"},
                "query": "instagram",
                "sources": ["x"],
            }
        ],
        "sources": {"x": {"api_base": url, "max_posts_per_run": size, "monthly_post_budget": size}},
    }
    return parse_config(document, folder)


def source_only(url: str, folder: Path, size: int) -> int:
    from monitor.sources.x import XSource

    config = config_for(url, folder, size)
    source = XSource.from_config(config)
    posts = sum(len(page.posts) for page in source.search(config.events[0], {}))
    source.close()
    return posts


def full_collect(url: str, folder: Path, size: int) -> int:
    from monitor.pipeline import collect, open_workspace

    ws = open_workspace(config=config_for(url, folder, size))
    try:
        (outcome,) = collect(ws).outcomes
        assert outcome.status == "ok", outcome.message
        assert ws.store.post_count("bench") == size
        return outcome.new
    finally:
        ws.close()


def timed(label: str, run: Any, size: int) -> float:
    started = time.perf_counter()
    posts = run()
    seconds = time.perf_counter() - started
    assert posts == size, f"{label}: {posts} posts, expected {size}"
    rate = posts / seconds
    print(f"{label:<10} {posts:>8} posts in {seconds:6.2f}s = {rate:8.0f} posts/s ({rate / 100:6.1f} pages/s)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20_000, help="posts on the fake API (default 20000)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the fake adds to each answer (e.g. 0.3)")
    arguments = parser.parse_args()
    size, latency = arguments.size, arguments.latency
    os.environ["X_BEARER_TOKEN"] = TOKEN
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(size, latency, child), daemon=True)
    server.start()
    url = parent.recv()
    try:
        with tempfile.TemporaryDirectory() as temporary:
            folder = Path(temporary)
            print(f"fake X API at {url}: {size} posts, 100 per page, +{latency}s per answer, {os.cpu_count()} cores")
            fetch = timed("raw fetch", lambda: raw_fetch(url), size)
            timed("source", lambda: source_only(url, folder / "s", size), size)
            stored = timed("collect", lambda: full_collect(url, folder / "c", size), size)
            print(f"collect runs at {stored / fetch:.0%} of the raw page-fetch rate")
    finally:
        parent.send("done")
        server.join(timeout=10)


if __name__ == "__main__":
    main()
