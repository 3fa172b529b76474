"""Posts per second and peak memory of scoring and analysis at scale: local, local with workers, Dask.

A store is filled with N simulated posts (a 20,000-post simulation tiled with new ids), then each path
scores all of them under its own scorer version (the lexicon differs by one unused word, so the scores
are the same and nothing is reused between paths) and analyses the event. Every stage runs in its own
process, which prints its own peak RSS; a LocalCluster's workers are processes of their own, so their
peak is reported apart (the largest worker).

    python benchmarks/scale.py --size 1000000 --size 5000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import yaml

TILE = 20_000
BATCH = 20_000
PATHS = {  # name → (scoring, analysis) code run in the stage's process
    "local": ("score(ws, workers=1)", "analyze_event(ws, EVENT)"),
    "local, 2 workers": ("score(ws, workers=2)", "analyze_event(ws, EVENT)"),
    "dask LocalCluster, 2 workers": (
        "score_dask(ws, scheduler=client.scheduler.address)",
        "analyze_event_dask(ws, EVENT, client); worker_peaks(client)",
    ),
}
STAGE = """
import contextlib, json, resource, sys, time
from monitor.pipeline import *
from monitor import dask_engine
from monitor.dask_engine import analyze_event_dask, score_dask
EVENT = "instagram-tos-2012"
peaks = []

def worker_peaks(client):
    peaks.extend(client.run(lambda: __import__("resource").getrusage(0).ru_maxrss).values())

ws = open_workspace(sys.argv[1])
with dask_engine.connect(None, workers=2) if "dask" in sys.argv[2] else contextlib.nullcontext() as client:
    began = time.perf_counter()
    {score}
    scored = time.perf_counter()
    {analyse}
    done = time.perf_counter()
print(json.dumps({{"score": scored - began, "analyse": done - scored,
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "worker_peak_mb": max(peaks, default=0) / 1024}}))
"""


def write_config(workdir: Path, stage: int) -> Path:
    from monitor.pipeline import demo_config

    config = demo_config(workdir).model_dump(mode="json", exclude_defaults=True)
    config["database"] = f"sqlite:///{workdir / 'bench.db'}"
    config["scoring"]["lexicon"] |= {f"benchmarkstage{stage}": 0.0}  # a scorer version of its own
    path = workdir / f"config-{stage}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def fill(config_path: Path, size: int) -> float:
    """Store `size` unscored simulated posts; return the seconds it took."""
    from monitor.pipeline import open_workspace
    from monitor.sources.simulated import simulate

    began = time.perf_counter()
    ws = open_workspace(config_path)
    event = ws.config.events[0]
    tile = simulate(event, ws.config, seed=1, posts=min(TILE, size))
    written, copy = 0, 0
    while written < size:
        shift = timedelta(seconds=(copy * 37) % 3000)
        posts = [
            replace(post, id=f"{post.id}-{copy}", created_at=post.created_at + shift) for post in tile[: size - written]
        ]
        for start in range(0, len(posts), BATCH):
            ws.store.add_posts(event.name, posts[start : start + BATCH])
        written += len(posts)
        copy += 1
    ws.close()
    return time.perf_counter() - began


def run_stage(config_path: Path, name: str) -> dict[str, float]:
    score, analyse = PATHS[name]
    code = STAGE.format(score=score, analyse=analyse)
    done = subprocess.run(
        [sys.executable, "-c", code, str(config_path), name], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, action="append", help="posts (repeatable; default 1,000,000)")
    parser.add_argument("--path", action="append", choices=list(PATHS), help="only these paths (repeatable)")
    args = parser.parse_args()
    print(
        f"{'posts':>10}  {'path':<29} {'score s':>8} {'posts/s':>8} {'analyse s':>9} {'posts/s':>8} {'peak MB':>8} {'worker MB':>9}"
    )
    for size in args.size or [1_000_000]:
        with tempfile.TemporaryDirectory() as folder:
            workdir = Path(folder)
            seconds = fill(write_config(workdir, 0), size)
            print(f"{size:>10,}  {'store posts (add_posts)':<29} {seconds:8.1f} {size / seconds:8,.0f}", flush=True)
            for stage, name in enumerate(args.path or list(PATHS), start=1):
                n = run_stage(write_config(workdir, stage), name)
                worker = f"{n['worker_peak_mb']:9,.0f}" if n["worker_peak_mb"] else ""
                print(
                    f"{size:>10,}  {name:<29} {n['score']:8.1f} {size / n['score']:8,.0f} {n['analyse']:9.1f} "
                    f"{size / n['analyse']:8,.0f} {n['peak_mb']:8,.0f} {worker}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
