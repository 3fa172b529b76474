"""Time and peak memory of `backlash report` for N stored, scored posts.

The store is filled from the simulated backlash, tiled to N posts (ids made unique, times jittered
within the hour), and every post gets a score row under the current scorer key (VADER run once per
distinct text), so only `report` itself is measured. `report` runs in its own process, so the peak
RSS printed is its own.

    python benchmarks/report.py --size 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

BATCH = 20_000
TILE = 20_000  # posts simulated once and repeated with new ids


def write_config(workdir: Path) -> Path:
    from monitor.pipeline import demo_config

    config = demo_config(workdir).model_dump(mode="json", exclude_defaults=True)
    config["database"] = f"sqlite:///{workdir / 'bench.db'}"
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def fill(config_path: Path, size: int) -> None:
    """Store `size` simulated posts with a score row each."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from monitor.pipeline import current_scorer, open_workspace
    from monitor.sources.simulated import simulate

    ws = open_workspace(config_path)
    event = ws.config.events[0]
    tile = simulate(event, ws.config, seed=1, posts=min(TILE, size))
    key = current_scorer(ws)
    analyzer, cache = SentimentIntensityAnalyzer(), {}  # type: ignore[var-annotated]
    written, copy = 0, 0
    while written < size:
        posts = [
            replace(post, id=f"{post.id}-{copy}", created_at=post.created_at + timedelta(seconds=(copy * 37) % 3000))
            for post in tile[: size - written]
        ]
        for start in range(0, len(posts), BATCH):
            batch = posts[start : start + BATCH]
            ws.store.add_posts(event.name, batch)
            ws.store.add_scores([score_row(post, key, analyzer, cache) for post in batch])
        written += len(posts)
        copy += 1
    ws.close()


@contextmanager
def filled_store(size: int) -> Iterator[tuple[Path, float]]:
    """A temporary folder with a config and a store of `size` stored, scored posts: (config path, seconds to fill)."""
    with tempfile.TemporaryDirectory() as folder:
        config_path = write_config(Path(folder))
        began = time.perf_counter()
        fill(config_path, size)
        yield config_path, time.perf_counter() - began


def score_row(post: Any, key: str | None, analyzer: Any, cache: dict[str, dict[str, float]]) -> dict[str, Any]:
    if post.lang != "en":
        return {"source": post.source, "post_id": post.id, "scorer": key, "status": "skipped:language"}
    if post.text not in cache:
        cache[post.text] = analyzer.polarity_scores(post.text)
    scores = cache[post.text]
    churn = any(word in post.text.lower() for word in ("deleting my account", "quitting", "goodbye", "leaving"))
    return {
        "source": post.source, "post_id": post.id, "scorer": key, "status": "scored", "lang": "en",
        "neg": scores["neg"], "neu": scores["neu"], "pos": scores["pos"], "compound": scores["compound"],
        "churn": churn, "aspects": "photos" if "photo" in post.text else "",
    }  # fmt: skip


def measure_report(config_path: Path) -> dict[str, float]:
    """Run `backlash report` in a child process: wall time and the child's peak RSS."""
    began = time.perf_counter()
    command = [sys.executable, "-m", "monitor", "--config", str(config_path), "report"]
    subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak_mb}


NAIVE = """
import re, resource, sqlite3, sys
from collections import Counter
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
database, announced, out = sys.argv[1:4]
with sqlite3.connect(database) as conn:
    posts = pd.read_sql(
        "SELECT p.created_at, p.text, s.compound FROM posts p JOIN scores s USING (source, post_id)", conn
    )
posts["created_at"] = pd.to_datetime(posts["created_at"], utc=True)
hourly = posts.set_index("created_at")["compound"].resample("h").agg(["mean", "count"])
after = posts.loc[posts["created_at"] >= pd.Timestamp(announced, tz="UTC"), "text"]
words = Counter(word for text in after.str.lower() for word in re.findall(r"\\w+", text))
figure, axes = plt.subplots()
hourly["count"].plot(ax=axes)
figure.savefig(out)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def measure_naive(workdir: Path, announced: str) -> dict[str, float]:
    """The minimum a quick pandas script does: read, hourly mean and count, words after the announcement, a figure."""
    began = time.perf_counter()
    command = [sys.executable, "-c", NAIVE, str(workdir / "bench.db"), announced, str(workdir / "naive.png")]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "peak_mb": float(output.split()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000, help="stored, scored posts")
    args = parser.parse_args()
    with filled_store(args.size) as (config_path, fill_seconds):
        workdir = config_path.parent
        db_mb = (workdir / "bench.db").stat().st_size / 1e6
        numbers = measure_report(config_path)
        announced = str(yaml.safe_load(config_path.read_text())["events"][0]["milestones"]["announced"])
        naive = measure_naive(workdir, announced)
        summary = json.loads((workdir / "dashboards" / "instagram-tos-2012" / "summary.json").read_text())
    print(f"report of {args.size:,} stored, scored posts (database {db_mb:,.0f} MB, filled in {fill_seconds:,.0f} s)")
    print(f"  backlash report  {numbers['seconds']:7.1f} s  peak {numbers['peak_mb']:7,.0f} MB")
    print(f"  naive pandas     {naive['seconds']:7.1f} s  peak {naive['peak_mb']:7,.0f} MB")
    print(f"  time ratio ours/naive: {numbers['seconds'] / naive['seconds']:.2f}x")
    print(f"  coverage.posts in summary.json: {summary['coverage']['posts']:,}")
    print(
        "  note: pipeline.analyze_event streams the event's posts in chunks of 50,000 into an AnalysisAccumulator "
        "(per-bin and per-window sums), so the peak does not grow with the store"
    )


if __name__ == "__main__":
    main()
