"""Time and peak memory of the page's drill-down (pipeline.drilldown.drill_down) for N stored, scored posts.

The store is filled as benchmarks/report.py fills it (the simulated backlash tiled to N posts, scored).
Each measurement runs in its own process, so each peak RSS is its own:
  - the analysis alone (pipeline.analyze_event), the cost every report pays anyway;
  - the analysis, then the drill-down (the spikes' window texts grouped by text in the database; top posts,
    examples and the reference's words from the analysis);
  - a naive drill-down after the same analysis: every post of the event read into one DataFrame, then
    filtered per spike, per driver term and per aspect in memory.

    python benchmarks/drilldown.py --size 200000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from report import filled_store  # noqa: E402  (benchmarks/report.py, beside this file)

CHILD = """
import json, resource, sys, time
from monitor.pipeline import open_workspace
from monitor.pipeline.report import analyze_event
ws = open_workspace(sys.argv[1])
began = time.perf_counter()
analysis = analyze_event(ws, ws.config.events[0].name, full=True)  # every child reads every day: the same footing
analysed = time.perf_counter() - began
began = time.perf_counter()
if sys.argv[2] == "drill":
    from monitor.pipeline.drilldown import drill_down
    drill = drill_down(ws, analysis)
    found = sum(len(s.engaged) for s in drill.spikes) + sum(len(p) for p in drill.drivers.values())
elif sys.argv[2] == "naive":
    import pandas as pd
    from monitor.analysis import NEGATIVE_AT
    posts = pd.concat(list(ws.store.iter_analysis_frames(analysis.event, "{key}")), ignore_index=True)
    posts["created_at"] = pd.to_datetime(posts["created_at"], utc=True)
    posts["engagement"] = posts[["likes", "reposts", "replies"]].fillna(0).sum(axis=1)
    found = 0
    for spike in analysis.spikes:
        inside = posts[(posts["created_at"] >= spike.start) & (posts["created_at"] <= spike.end)]
        found += len(inside.nlargest(5, "engagement")) + len(inside.nsmallest(5, "compound"))
    negative = posts[posts["compound"] <= NEGATIVE_AT]
    lower = negative["text"].str.lower()
    for driver in analysis.drivers:
        found += len(negative[lower.str.contains(driver.term, regex=False)].nlargest(3, "engagement"))
    for aspect in analysis.aspects:
        found += len(posts[posts["aspects"].fillna("").str.contains(aspect.aspect)].nlargest(3, "engagement"))
else:
    found = 0
extra = time.perf_counter() - began
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"analysis_s": analysed, "extra_s": extra, "peak_mb": peak, "spikes": len(analysis.spikes), "found": found}))
"""


def measure(config_path: Path, step: str) -> dict[str, float]:
    from monitor.pipeline import current_scorer, open_workspace

    ws = open_workspace(config_path)
    key = current_scorer(ws)
    ws.close()
    command = [sys.executable, "-c", CHILD.replace("{key}", str(key)), str(config_path), step]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=200_000, help="stored, scored posts")
    args = parser.parse_args()
    with filled_store(args.size) as (config_path, fill_seconds):
        print(f"drill-down on {args.size:,} stored, scored posts (filled in {fill_seconds:,.0f} s)")
        runs = {step: measure(config_path, step) for step in ("analysis", "drill", "naive")}
    spikes = runs["drill"]["spikes"]
    for step, numbers in runs.items():
        print(
            f"  {step:9} analysis {numbers['analysis_s']:6.1f} s  + {numbers['extra_s']:6.1f} s"
            f"  peak {numbers['peak_mb']:7,.0f} MB  ({numbers['found']:,} example posts, {spikes} spikes)"
        )
    drill, naive, alone = runs["drill"], runs["naive"], runs["analysis"]
    print(f"  drill-down / analysis time: {drill['extra_s'] / drill['analysis_s']:.2f}x")
    print(f"  drill-down / naive time: {drill['extra_s'] / naive['extra_s']:.2f}x")
    print(f"  peak over the analysis alone: drill-down +{drill['peak_mb'] - alone['peak_mb']:,.0f} MB, "
          f"naive +{naive['peak_mb'] - alone['peak_mb']:,.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
