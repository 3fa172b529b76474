"""Scoring rate (posts/s) and peak memory of the real `score` path against a naive pandas baseline.

Generates N posts (30 % reposts of a recent post's text, 5 % without a language tag) into a real SQLite
store, then, each in its own process so peak RSS is its own:
  ours  — monitor.pipeline.score (keyset chunks, identical texts once, worker processes, scores written back)
  naive — pandas `df.text.apply(SentimentIntensityAnalyzer().polarity_scores)` on the same texts, in one
          process, timing the apply alone (no reading or writing: the baseline is flattered, not ours)

    python benchmarks/score.py --size 1000000 --workers 2
    python benchmarks/score.py --size 300000 --untagged 1 --texts ../shared/data/elonmusktwitter-2022.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

WORD_TEXT = (
    "instagram terms policy photos ads privacy users app new change today they we my your our it this love hate "
    "great awful terrible good bad happy sad angry fine nice horrible amazing worst best sell boycott quit delete "
    "account friends filters not very really never so totally lol wow omg why how"
)
WORDS = WORD_TEXT.split()
EXTRAS = ["!", "!!!", "?", ":)", ":(", "#boycott", "#deleteinstagram", "http://t.co/abc", "&amp;", "😠"]
EVENT = "instagram-tos-2012"


def config_document(database: str, chunk_size: int) -> dict[str, object]:
    return {
        "database": database,
        "events": [
            {
                "name": EVENT,
                "platform": "Instagram",
                "milestones": {"announced": "2012-12-17", "reversed": "2012-12-20", "effective": "2013-01-16"},
                "aspects": {"ads": ["ad", "ads", "advertis*"], "photos": ["photo*", "pics", "sell*"]},
            }
        ],
        "scoring": {"lexicon": {"boycott": -2.5, "#deleteinstagram": -3}, "chunk_size": chunk_size},
    }


def generated_posts(size: int, untagged: float, texts: list[str], seed: int = 7):  # type: ignore[no-untyped-def]
    """Posts of word soup, or of real texts (cycled) when given; `untagged` of them without a language tag."""
    from monitor.posts import Post

    rng = random.Random(seed)
    start = datetime(2012, 12, 10, tzinfo=UTC)
    recent: list[str] = []
    for number in range(size):
        if recent and rng.random() < 0.3:
            text = f"RT @u{rng.randrange(1000)}: " + rng.choice(recent)
        elif texts:  # a letters-only tag per post: no cache (ours or the identifier's) sees a text twice
            text = f"{texts[number % len(texts)]} {letters(number)}"
            recent = [*recent[-4999:], text]
        else:
            words = rng.choices(WORDS, k=rng.randint(5, 25)) + rng.choices(EXTRAS, k=rng.randint(0, 2))
            rng.shuffle(words)
            text = " ".join(words) + f" {number}"  # the number keeps originals unique
            recent = [*recent[-4999:], text]
        lang = None if rng.random() < untagged else "en"
        yield Post(source="x", id=f"{number:09d}", created_at=start + timedelta(seconds=number), text=text, lang=lang)


def letters(number: int) -> str:
    """12345 → 'bdwj': digits as letters, so a text's language evidence differs from every other's."""
    return "".join(chr(ord("a") + int(digit)) for digit in str(number))


def real_texts(path: Path | None) -> list[str]:
    if path is None:
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle) if row.get("text")]


def fill_store(database: str, size: int, untagged: float, texts: list[str]) -> None:
    from monitor.store import open_store

    store = open_store(database)
    batch = []
    for post in generated_posts(size, untagged, texts):
        batch.append(post)
        if len(batch) == 10_000:
            store.add_posts(EVENT, batch)
            batch.clear()
    store.add_posts(EVENT, batch)
    store.close()


def peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (the pool's workers are joined in score)."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


def measure_ours(database: str, workers: int, chunk_size: int) -> dict[str, float]:
    from monitor.config import parse_config
    from monitor.pipeline import open_workspace, score

    ws = open_workspace(config=parse_config(config_document(database, chunk_size)))
    started, cpu_before = time.perf_counter(), cpu_seconds()
    result = score(ws, workers=workers)
    seconds = time.perf_counter() - started
    ws.close()
    parent, worker = peak_mb(resource.RUSAGE_SELF), peak_mb(resource.RUSAGE_CHILDREN)
    cpu = cpu_seconds() - cpu_before
    return {
        "seconds": seconds,
        "posts": result.total,
        "scored": result.scored,
        "reused": result.reused,
        "posts_per_s": result.total / seconds,
        "peak_parent_mb": parent,
        "peak_worker_mb": worker,
        "peak_total_mb": parent + workers * worker,  # every process at its own peak at once: an upper bound
        "cpu_seconds": cpu,  # main + workers: how many of the 2 cores the run actually got on a shared machine
        "cores_used": cpu / seconds,
    }


def measure_naive(database: str) -> dict[str, float]:
    import pandas as pd
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    with sqlite3.connect(database.removeprefix("sqlite:///")) as connection:
        df = pd.read_sql_query("SELECT text FROM posts", connection)
    started, cpu_before = time.perf_counter(), cpu_seconds()
    df["scores"] = df.text.apply(SentimentIntensityAnalyzer().polarity_scores)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_before
    return {
        "seconds": seconds,
        "posts": len(df),
        "posts_per_s": len(df) / seconds,
        "peak_mb": peak_mb(0),
        "cpu_seconds": cpu,
    }


def in_child(*args: str) -> dict[str, float]:
    output = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--untagged", type=float, default=0.05, help="share of posts without a language tag")
    parser.add_argument("--texts", type=Path, help="a CSV with a text column (e.g. a real archive) to cycle through")
    parser.add_argument("--measure", choices=["ours", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.measure == "ours":
        print(json.dumps(measure_ours(options.database, options.workers, options.chunk_size)))
        return
    if options.measure == "naive":
        print(json.dumps(measure_naive(options.database)))
        return
    with tempfile.TemporaryDirectory() as folder:
        database = f"sqlite:///{Path(folder) / 'bench.db'}"
        started = time.perf_counter()
        fill_store(database, options.size, options.untagged, real_texts(options.texts))
        print(f"generated {options.size} posts in {time.perf_counter() - started:.0f}s", file=sys.stderr)
        common = ["--database", database, "--workers", str(options.workers), "--chunk-size", str(options.chunk_size)]
        ours = in_child("--measure", "ours", *common)
        naive = in_child("--measure", "naive", *common)
    shape = {
        "size": options.size,
        "workers": options.workers,
        "untagged": options.untagged,
        "texts": str(options.texts),
    }
    print(json.dumps(shape | {"ours": ours, "naive": naive, "load_average": os.getloadavg()}, indent=2))
    print(
        f"ours {ours['posts_per_s']:.0f} posts/s (peak {ours['peak_total_mb']:.0f} MB over all processes), "
        f"naive {naive['posts_per_s']:.0f} posts/s (peak {naive['peak_mb']:.0f} MB): "
        f"{ours['posts_per_s'] / naive['posts_per_s']:.2f}x"
    )
    # on a shared machine the wall-clock ratio moves with the neighbours' load; CPU seconds per post do not
    print(
        f"CPU: ours {ours['cpu_seconds']:.1f} s over {options.workers} workers and the main process, "
        f"naive {naive['cpu_seconds']:.1f} s: ours uses {ours['cpu_seconds'] / naive['cpu_seconds']:.2f}x the CPU"
    )


if __name__ == "__main__":
    main()
