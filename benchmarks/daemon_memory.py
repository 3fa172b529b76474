"""Resident memory of `backlash run` over many collect cycles against the fake X API: it must stay flat.

The daemon runs as a real process collecting every second; before each cycle the fake API gains
`--posts` new posts, so every collect reads, normalises and stores real pages. VmRSS is read from
/proc/PID/status every `--every` cycles; the growth from cycle 20 (after imports, pools and caches
have warmed up) to the last cycle is the number that matters.

    python benchmarks/daemon_memory.py                  # 200 cycles, about 3.5 minutes
    python benchmarks/daemon_memory.py --cycles 60 --every 10
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.store import Store, open_store  # noqa: E402 - after the path insert, like the other benchmarks
from tests.fake_x_api import FakeXApi, make_tweets  # noqa: E402

TOKEN = "benchmark-bearer-token"
WARM_CYCLE = 20


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc status")


def write_config(folder: Path, api_url: str) -> Path:
    document = {
        "database": f"sqlite:///{folder / 'daemon.db'}",
        "events": [
            {
                "name": "bench",
                "platform": "Instagram",
                "milestones": {"announced": "2012-12-17"},
                "query": "instagram",
                "sources": ["x"],
            }
        ],
        "sources": {"x": {"api_base": api_url, "monthly_post_budget": 10_000_000}},
        "schedule": {"collect_every": "1s"},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def finished_cycles(store: Store) -> int:
    return sum(1 for run in store.recent_runs(100_000) if run.verb == "job:collect" and run.status != "running")


def measure(cycles: int, every: int, posts: int) -> list[tuple[int, int]]:
    """(cycle, RSS in KiB) samples of a daemon run for `cycles` collects."""
    samples: list[tuple[int, int]] = []
    with tempfile.TemporaryDirectory() as folder, FakeXApi(token=TOKEN) as api:
        config = write_config(Path(folder), api.url)
        env = {**os.environ, "X_BEARER_TOKEN": TOKEN}
        log = (Path(folder) / "daemon.log").open("wb")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(config), "run"], stderr=log, env=env, cwd=ROOT
        )
        store = open_store(f"sqlite:///{Path(folder) / 'daemon.db'}")  # before the daemon: schema creation races
        added = done = 0
        try:
            while done < cycles:
                if daemon.poll() is not None:
                    tail = Path(log.name).read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"the daemon exited with {daemon.returncode}:\n{tail}")
                if added <= done:  # one batch of fresh posts per cycle
                    api.add_tweets(make_tweets(posts, first=added * posts))
                    added += 1
                now = finished_cycles(store)
                if now // every > done // every or (done < WARM_CYCLE <= now):
                    samples.append((now, rss_kib(daemon.pid)))
                    print(f"cycle {now:4d}: RSS {samples[-1][1] / 1024:7.1f} MiB", flush=True)
                done = now
                time.sleep(0.05)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=15)
            print(f"posts stored: {store.post_count()} (expected {cycles * posts} or one batch more)")
            store.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200, help="collect cycles to run (one per second)")
    parser.add_argument("--every", type=int, default=10, help="sample RSS every N cycles")
    parser.add_argument("--posts", type=int, default=50, help="new posts the fake API gains before each cycle")
    args = parser.parse_args()
    samples = measure(args.cycles, args.every, args.posts)
    first = next(rss for cycle, rss in samples if cycle >= WARM_CYCLE)
    last_cycle, last = samples[-1]
    growth = last - first
    print(
        f"RSS growth from cycle {WARM_CYCLE} to {last_cycle}: {growth / 1024:+.1f} MiB "
        f"({growth / first:+.1%}; {growth / max(1, last_cycle - WARM_CYCLE):+.1f} KiB per cycle)"
    )


if __name__ == "__main__":
    main()
