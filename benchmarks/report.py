"""Time and peak memory of `backlash report` for N stored, scored posts: the first report, and the next after +1 %.

The store is filled from the simulated backlash, tiled to N posts (ids made unique, times jittered
within the hour), and every post gets a score row under the current scorer key (VADER run once per
distinct text), so only `report` itself is measured. Then, in the same run:

1. the first `backlash report` (no stored day sums yet: every day of posts is read and its sums stored);
2. N/100 new scored posts within the last day of the event's posts (what an hourly collect brings), and
   the second `backlash report`, which reads only the days the new posts fell on;
3. `backlash report --full` on the same store (every day read again: the cost without stored sums);
4. a naive pandas script doing the minimum on the same database.

Each runs in its own process; the peak RSS printed is that process's own, and "worker" the largest of the
processes it started (the report's second process for the later half of the days), both sampled from /proc;
CPU seconds count every process of the run.

    python benchmarks/report.py --size 1000000 [--keep DIR]   # --keep: fill DIR once, reuse a copy of it later
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
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
def filled_store(size: int, keep: Path | None = None) -> Iterator[tuple[Path, float]]:
    """A temporary folder with a config and a store of `size` stored, scored posts (copied from `keep` when a
    filled one is kept there): (config path, seconds to fill, 0 when copied)."""
    with tempfile.TemporaryDirectory() as folder:
        fill_seconds = prepared(Path(folder), size, keep)
        yield Path(folder) / "config.yaml", fill_seconds


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


def add_recent(config_path: Path, count: int) -> float:
    """Store `count` new scored posts spread over the last day of the stored posts; return the seconds it took."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from monitor.pipeline import current_scorer, open_workspace
    from monitor.sources.simulated import simulate

    ws = open_workspace(config_path)
    event = ws.config.events[0]
    tile = simulate(event, ws.config, seed=2, posts=min(TILE, count))
    latest = max(post.created_at for post in tile)
    posts = [
        replace(tile[i % len(tile)], id=f"new-{i}", created_at=latest - timedelta(seconds=(i * 7919) % 86_400))
        for i in range(count)
    ]
    key, analyzer, cache = current_scorer(ws), SentimentIntensityAnalyzer(), {}  # type: ignore[var-annotated]
    began = time.perf_counter()
    for start in range(0, len(posts), BATCH):
        batch = posts[start : start + BATCH]
        ws.store.add_posts(event.name, batch)
        ws.store.add_scores([score_row(post, key, analyzer, cache) for post in batch])
    seconds = time.perf_counter() - began
    ws.close()
    return seconds


def measure(command: list[str]) -> dict[str, float]:
    """Run a command in a child process: its wall time, CPU time (with the processes it started and waited
    for), its own peak RSS and the largest peak RSS of the processes it started (sampled from /proc)."""
    began, load = time.perf_counter(), os.getloadavg()[0]
    peaks: dict[int, float] = {}
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            for member in [process.pid, *descendants(process.pid)]:
                peaks[member] = max(peaks.get(member, 0.0), peak_rss_mb(member))
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            errors.seek(0)
            raise SystemExit(f"{command[:4]} failed: {errors.read().decode()[-2000:]}")
    helper = max((peak for member, peak in peaks.items() if member != process.pid), default=0.0)
    largest = usage.ru_maxrss / 1024  # of the process and those it waited for: its own when above every helper's
    return {
        "seconds": time.perf_counter() - began,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_mb": max(peaks.get(process.pid, 0.0), largest if largest > helper else 0.0),
        "helper_mb": helper,
        "load": load,
    }


def descendants(pid: int) -> list[int]:
    """The processes started by pid and by those, from /proc (Linux)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident set (VmHWM) so far, 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((line for line in status.splitlines() if line.startswith("VmHWM:")), "VmHWM: 0 kB")
    return int(line.split()[1]) / 1024


def measure_report(config_path: Path, *options: str) -> dict[str, float]:
    return measure([sys.executable, "-m", "monitor", "--config", str(config_path), "report", *options])


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
    command = [sys.executable, "-c", NAIVE, str(workdir / "bench.db"), announced, str(workdir / "naive.png")]
    return measure(command)


def prepared(workdir: Path, size: int, keep: Path | None) -> float:
    """Fill workdir's store (or copy a kept one filled before); return the seconds filling took (0: copied)."""
    config_path = write_config(workdir)
    if keep is not None and (keep / "bench.db").exists():
        shutil.copy(keep / "bench.db", workdir / "bench.db")
        return 0.0
    began = time.perf_counter()
    fill(config_path, size)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(workdir / "bench.db", keep / "bench.db")
    return time.perf_counter() - began


def line(name: str, numbers: dict[str, float], naive: dict[str, float]) -> str:
    ratio = numbers["seconds"] / naive["seconds"]
    helper = f"  worker {numbers['helper_mb']:5,.0f} MB" if numbers["helper_mb"] else " " * 18
    return (
        f"  {name:<34} {numbers['seconds']:6.1f} s  {numbers['cpu']:6.1f} s CPU  peak {numbers['peak_mb']:5,.0f} MB"
        f"{helper}  {ratio:5.2f}x naive  (load {numbers['load']:.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000, help="stored, scored posts")
    parser.add_argument("--keep", type=Path, default=None, help="keep the filled database here and reuse it")
    args = parser.parse_args()
    with filled_store(args.size, args.keep) as (config_path, fill_seconds):
        workdir = config_path.parent
        db_mb = (workdir / "bench.db").stat().st_size / 1e6
        load = os.getloadavg()[0]
        first = measure_report(config_path)
        added = add_recent(config_path, args.size // 100)
        second = measure_report(config_path)
        full = measure_report(config_path, "--full")
        announced = str(yaml.safe_load(config_path.read_text())["events"][0]["milestones"]["announced"])
        naive = measure_naive(workdir, announced)
        summary = json.loads((workdir / "dashboards" / "instagram-tos-2012" / "summary.json").read_text())
    print(f"report of {args.size:,} stored, scored posts (database {db_mb:,.0f} MB, filled in {fill_seconds:,.0f} s)")
    print(f"  {datetime.now():%Y-%m-%d %H:%M}, load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(line("first report (no stored day sums)", first, naive))
    print(f"  + {args.size // 100:,} new scored posts in the last day: stored (posts, scores, day marks) in {added:.1f} s")
    print(line("second report (stale days only)", second, naive))
    print(line("report --full (every day read)", full, naive))
    print(line("naive pandas", naive, naive))
    print(f"  second/first: {second['seconds'] / first['seconds']:.2f}")
    print(f"  coverage.posts in summary.json: {summary['coverage']['posts']:,}")


if __name__ == "__main__":
    main()
