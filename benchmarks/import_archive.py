"""Import rate (posts/s) and peak memory of `backlash import` on a generated CSV archive.

Each measurement runs in its own process so peak RSS is its own. The naive baseline reads the whole
file with pandas and writes it with `DataFrame.to_sql` — what a quick script would do.

With --floor it also measures SQLite alone on the import's own rows, read and checked beforehand (not
timed): our store's writer, the posts table written with only the primary key that a conflict-ignore
insert needs, and written with no key at all as `to_sql` does — what any import into this table costs
before a single line of the archive is parsed.

    python benchmarks/import_archive.py --size 1000000 [--floor]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

WORDS = [
    "instagram",
    "terms",
    "photos",
    "sell",
    "ads",
    "privacy",
    "quit",
    "delete",
    "account",
    "boycott",
    "love",
    "filters",
    "friends",
    "new",
    "policy",
]


def generate(path: Path, size: int) -> None:
    """A scraped-style archive: no ids, author/created_at/lang/likes/client/text."""
    rng = random.Random(7)
    start = datetime(2012, 12, 10, tzinfo=UTC)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["author", "created_at", "lang", "likes", "client", "text"])
        for i in range(size):
            stamp = start + timedelta(seconds=i * 3)
            text = " ".join(rng.choices(WORDS, k=rng.randint(6, 25))) + f" #{i % 97}"
            writer.writerow([f"u{rng.randrange(10**9):09d}", stamp.isoformat(), "en", rng.randint(0, 50), "web", text])


def peak_mb() -> float:
    """The process's peak RSS, plus the largest child's (the archive reader process, when there is one)."""
    own, children = (resource.getrusage(who).ru_maxrss / 1024 for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own + children


def cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the archive reader process, when there is one)."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bench_workspace(workdir: Path, name: str) -> Any:
    """A workspace with one event, "bench", over a fresh SQLite file in workdir."""
    from monitor.config import parse_config
    from monitor.pipeline import open_workspace

    config = parse_config(
        {
            "database": f"sqlite:///{workdir / name}",
            "events": [{"name": "bench", "platform": "Instagram", "milestones": {"announced": "2012-12-17"}}],
        },
        workdir,
    )
    return open_workspace(config=config)


def run_ours(archive: Path, workdir: Path) -> dict[str, float]:
    from monitor.pipeline import import_archive

    ws = bench_workspace(workdir, "ours.db")
    began, cpu = time.perf_counter(), cpu_seconds()
    result = import_archive(ws, archive, "bench")
    seconds = time.perf_counter() - began
    return {"posts": result.new, "seconds": seconds, "peak_mb": peak_mb(), "cpu_seconds": cpu_seconds() - cpu}


def run_naive(archive: Path, workdir: Path) -> dict[str, float]:
    import sqlite3

    import pandas as pd

    began, cpu = time.perf_counter(), cpu_seconds()
    frame = pd.read_csv(archive)
    with sqlite3.connect(workdir / "naive.db") as conn:
        frame.to_sql("posts", conn, index=False)
    seconds = time.perf_counter() - began
    return {"posts": len(frame), "seconds": seconds, "peak_mb": peak_mb(), "cpu_seconds": cpu_seconds() - cpu}


def run_floor(archive: Path, workdir: Path) -> dict[str, float]:
    """Seconds SQLite alone takes to store the archive's rows, read and checked beforehand."""
    from monitor.pipeline.archive import IMPORT_BATCH
    from monitor.posts import Post, PostRows, post_row
    from monitor.sources.archive import read_archive

    rows: list[tuple[Any, ...]] = []
    for record in read_archive(archive, "csv", "archive", {}):
        if isinstance(record, PostRows):
            rows += record.rows
        elif isinstance(record, Post):
            rows.append(post_row(record))
    batches = [rows[start : start + IMPORT_BATCH] for start in range(0, len(rows), IMPORT_BATCH)]
    ws = bench_workspace(workdir, "floor.db")
    began = time.perf_counter()
    with ws.store.indexes_deferred():
        for batch in batches:
            ws.store.add_posts("bench", PostRows(batch))
    numbers = {"posts": len(rows), "store_writer": time.perf_counter() - began}
    numbers["key_only"] = _write_posts_table(ws.store, "keyed_posts", batches, keyed=True)
    numbers["no_key"] = _write_posts_table(ws.store, "bare_posts", batches, keyed=False)
    return numbers


def _write_posts_table(store: Any, name: str, batches: list[list[tuple[Any, ...]]], keyed: bool) -> float:
    """Seconds to write the batches into a copy of the posts table's columns, by the store's own multi-row
    insert: with its primary key only (sorted by it, as the store does) or with no key (in file order)."""
    from sqlalchemy import Column, MetaData, Table

    from monitor.store import posts_table

    table = Table(name, MetaData(), *(Column(c.name, c.type, primary_key=keyed and c.primary_key) for c in posts_table.columns))
    table.create(store.engine)
    names = [column.name for column in table.columns]
    began = time.perf_counter()
    for batch in batches:
        with store.engine.begin() as conn:
            store._insert_many(conn, table, names, sorted(batch, key=lambda row: row[:2]) if keyed else batch)
    return time.perf_counter() - began


def measure(phase: str, archive: Path, workdir: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--phase", phase, "--archive", str(archive), "--workdir", str(workdir)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000, help="rows in the generated archive")
    parser.add_argument("--floor", action="store_true", help="also time SQLite alone on the rows (no parsing)")
    parser.add_argument("--phase", choices=["ours", "naive", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--archive", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        runner = {"ours": run_ours, "naive": run_naive, "floor": run_floor}[args.phase]
        print(json.dumps(runner(args.archive, args.workdir)))
        return
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        archive = workdir / "archive.csv"
        generate(archive, args.size)
        size_mb = archive.stat().st_size / 1e6
        ours, naive = measure("ours", archive, workdir), measure("naive", archive, workdir)
        floor = measure("floor", archive, workdir) if args.floor else None
    print(f"import of a {args.size:,}-row CSV ({size_mb:,.0f} MB), load average {os.getloadavg()[0]:.1f}")
    for name, numbers in (("backlash import", ours), ("naive pandas", naive)):
        rate = numbers["posts"] / numbers["seconds"]
        print(
            f"  {name:16s} {rate:10,.0f} posts/s  {numbers['seconds']:7.1f} s  CPU {numbers['cpu_seconds']:6.1f} s  "
            f"peak {numbers['peak_mb']:7,.0f} MB"
        )
    print(
        f"  speed ratio ours/naive: {ours['seconds'] and naive['seconds'] / ours['seconds']:.2f}x "
        f"(by CPU seconds {naive['cpu_seconds'] / ours['cpu_seconds']:.2f}x); "
        f"memory ratio ours/naive: {ours['peak_mb'] / naive['peak_mb']:.2f}x"
    )
    if floor is not None:
        print_floor(floor, naive["seconds"])


def print_floor(floor: dict[str, float], naive_seconds: float) -> None:
    print(f"  SQLite alone, the {floor['posts']:,.0f} rows read and checked beforehand (not timed):")
    for key, what in (
        ("store_writer", "our store's writer (posts, their key, event links, time index built after)"),
        ("key_only", "the posts table with its primary key only (the least a conflict-ignore insert does)"),
        ("no_key", "the posts table with no key, in file order (what to_sql does)"),
    ):
        print(f"    {floor[key]:6.1f} s  {what}")
    print(f"  a third of the naive rate leaves {naive_seconds * 3:.1f} s for reading, checking and storing")


if __name__ == "__main__":
    main()
