"""Charts + numbers → dashboards/<event>/ (four PNGs, index.html, summary.json), swapped in whole.

The folder is built beside its final place and renamed over it, so a reader (a browser, the
digest) sees either the previous report or the new one, never a mix of two runs.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from monitor.analysis import Analysis, Shift, Spike
from monitor.drilldown import Drilldown, Example, SpikeDetail, spike_span, with_drilldown
from monitor.wording import (
    adjusted_churn_note,
    baseline_note,
    checked_note,
    driver_examples_note,
    feeds_text,
    language_note,
    no_driver_example,
    p_value,
    partial_bin_note,
    per_bin,
    points_diff,
    repost_note,
    share,
    shift_direction,
    sources_text,
    spike_size,
    spike_volume_note,
    term_reference,
    unscored_note,
    verdict,
    who_what_rows,
    window_note,
)

if TYPE_CHECKING:
    from monitor.plots import SpikeSpot

TEMPLATE = "report.html.j2"
LEFTOVER_MAX_AGE = timedelta(days=1)  # a building folder this old is stale even if its PID is alive (PIDs are reused)
METRIC_NAMES = {"mean_compound": "mean compound", "negative_share": "negative share", "volume": "posts per hour"}
KEY_WINDOW = "72h"  # the shift rows shown first: 72 h after each milestone; the rest are behind <details>


@dataclass(frozen=True)
class ReportResult:
    """One event's report folder and the files in it."""

    event: str
    folder: Path
    files: list[Path]
    posts: int = 0  # posts the report covers
    scored: int = 0  # of which scored by the current scorer
    notes: tuple[str, ...] = ()  # what the reader must know first (a thin baseline, posts outside the window)

    @property
    def index(self) -> Path:
        return self.folder / "index.html"


def write_report(
    analysis: Analysis,
    every_event: list[Analysis],
    out_dir: Path,
    drill: Drilldown | None = None,
    elsewhere: Executor | None = None,
) -> ReportResult:
    """Write out_dir/<event>/ for one analysis; every_event feeds the comparison chart; drill (when given)
    adds a section per spike and example posts per driver term and aspect, linked from the tables and chart.
    elsewhere: a second process that draws some of the charts meanwhile."""
    from monitor.plots import write_charts

    target = out_dir / analysis.event
    remove_leftovers(out_dir, analysis.event)
    building = out_dir / f".{analysis.event}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        charts = write_charts(analysis, every_event, building, elsewhere)
        summary = analysis.summary() if drill is None else with_drilldown(analysis.summary(), drill)
        (building / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
        page = render_page(analysis, [c.name for c in charts.files], drill, charts.spots)
        (building / "index.html").write_text(page, encoding="utf-8")
        carry_over(target, building)
        swap_folder(building, target)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    names = [*(chart.name for chart in charts.files), "index.html", "summary.json"]
    files = [target / name for name in names]
    coverage = analysis.coverage
    notes = tuple(page_notes(analysis))
    return ReportResult(analysis.event, target, files, posts=coverage.posts, scored=coverage.scored, notes=notes)


def remove_leftovers(out_dir: Path, event: str) -> None:
    """Remove the .<event>.building-PID and .<event>.old-PID folders of reports that were killed.

    A folder is left alone while its process runs (another report is building it), unless it is a day old.
    """
    pattern = re.compile(rf"\.{re.escape(event)}\.(?:building|old)-(\d+)")
    for path in out_dir.glob(f".{event}.*-*"):
        found = pattern.fullmatch(path.name)
        if found and (not process_alive(int(found.group(1))) or _older_than(path, LEFTOVER_MAX_AGE)):
            shutil.rmtree(path, ignore_errors=True)


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _older_than(path: Path, age: timedelta) -> bool:
    try:
        return time.time() - path.stat().st_mtime > age.total_seconds()
    except OSError:
        return False


KEPT_FILES = "*.eml"  # digests and alerts that `digest --dry-run` and the daemon wrote: not the report's to replace


def carry_over(target: Path, building: Path) -> None:
    """Copy the event folder's .eml files into the new folder, so swapping it in keeps them."""
    for path in target.glob(KEPT_FILES):
        if path.is_file():
            shutil.copy2(path, building / path.name)


def swap_folder(fresh: Path, target: Path) -> None:
    """Put fresh where target is with renames: the old folder is moved aside, then removed."""
    retired = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, retired)
    os.replace(fresh, target)
    shutil.rmtree(retired, ignore_errors=True)


def render_page(
    analysis: Analysis, charts: list[str], drill: Drilldown | None = None, spots: dict[str, list[SpikeSpot]] | None = None
) -> str:
    """index.html: autoescaped, so post text can never become markup."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("monitor", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    context = page_context(analysis, charts) | drill_context(analysis, drill or Drilldown(), spots or {})
    return environment.get_template(TEMPLATE).render(context)


def page_context(analysis: Analysis, charts: list[str]) -> dict[str, Any]:
    """Everything the template shows, already formatted (the template only lays it out)."""
    zone = ZoneInfo(analysis.timezone)
    return {
        "a": analysis,
        "title": analysis.title or analysis.event,
        "charts": charts,
        "coverage": coverage_rows(analysis, zone),
        "networks": network_rows(analysis),
        "headline": headline_rows(analysis, zone),
        "verdict": verdict(analysis),
        "per_bin": per_bin(analysis.bin),
        "partial_note": partial_bin_note(analysis),
        "key_shifts": [shift_row(shift) for shift in analysis.shifts if shift.window == KEY_WINDOW],
        "other_shifts": [shift_row(shift) for shift in analysis.shifts if shift.window != KEY_WINDOW],
        "notes": page_notes(analysis),
        "spikes": [spike_row(spike, analysis, zone) for spike in analysis.spikes],
        "milestones": [(name, local(moment, zone)) for name, moment in sorted(analysis.milestones.items(), key=lambda i: i[1])],
        "posts": [
            {**post.__dict__, "when": local(post.created_at, zone), "compound": f"{post.compound:+.2f}",
             "engagement": f"{post.engagement:,}"}
            for post in analysis.top_posts
        ],
        "generated_at": local(analysis.generated_at, zone),
        "who_what": who_what_rows(analysis),
    }  # fmt: skip


def page_notes(analysis: Analysis) -> list[str]:
    """What the reader must know before trusting the numbers: posts not scored yet, a thin baseline, posts left out."""
    notes = (unscored_note(analysis), baseline_note(analysis), window_note(analysis))
    return [note for note in notes if note]


def local(moment: datetime | None, zone: ZoneInfo) -> str:
    return "—" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def network_rows(analysis: Analysis) -> list[dict[str, str]]:
    """Each network's posts, share and tone side by side: the tone differs between networks."""
    return [
        {"name": name, "posts": f"{posts:,}", "share": f"{share:.0%}", "tone": "—" if tone is None else f"{tone:+.2f}"}
        for name, posts, share, tone in analysis.network_totals()
    ]


def coverage_rows(analysis: Analysis, zone: ZoneInfo) -> list[tuple[str, str]]:
    coverage = analysis.coverage
    rows = [
        ("posts", f"{coverage.posts:,}"),
        ("scored", f"{coverage.scored:,}"),
        ("reposts", f"{coverage.reposts:,}"),
        ("quotes", f"{coverage.quotes:,}"),
        ("not scored (language)", f"{coverage.not_scored_language:,}"),
        ("not scored (other)", f"{coverage.not_scored_other:,}"),
        ("not scored yet", f"{coverage.unscored:,}"),
        ("language", language_note(analysis)),
        ("outside the event window", f"{coverage.before_window:,} before, {coverage.after_window:,} after"),
        ("sources", sources_text(analysis) or "—"),
        ("first post", local(coverage.first_post, zone)),
        ("last post", local(coverage.last_post, zone)),
    ]
    if coverage.feeds_read:
        rows.append(("feeds read (statuses)", feeds_text(analysis)))
    if coverage.counted is not None:
        rows.append(("counted by the platform", f"{coverage.counted:,}"))
    rows.append(("data", "SIMULATED — not real posts" if coverage.simulated else "collected"))
    return rows


def headline_rows(analysis: Analysis, zone: ZoneInfo) -> list[tuple[str, str]]:
    """The busiest bin of the whole window (the verdict names the busiest since the announcement) and the spikes."""
    bins = analysis.bins
    if bins.empty:
        return [("posts", "none yet")]
    peak_at = bins.index[int(bins["volume"].to_numpy().argmax())].to_pydatetime()
    busiest = f"{int(bins['volume'].max()):,} posts {per_bin(analysis.bin)}, at {local(peak_at, zone)}"
    return [("busiest bin (whole window)", busiest), *checked_rows(analysis), ("spikes", str(len(analysis.spikes)))]


def checked_rows(analysis: Analysis) -> list[tuple[str, str]]:
    """The hand check of our labels (`backlash validate`), beside the churn share it qualifies."""
    notes = [
        ("say they will leave, checked by hand", checked_note(analysis, "churn", "yes", "churn intent")),
        ("say they will leave, adjusted", adjusted_churn_note(analysis)),
        ("negative, checked by hand", checked_note(analysis, "sentiment", "negative", "negative sentiment")),
    ]
    return [(label, note) for label, note in notes if note]


def shift_row(shift: Shift) -> dict[str, str]:
    digits = 1 if shift.metric == "volume" else 2
    percent = shift.metric == "negative_share"

    def show(value: float, sign: bool = False) -> str:
        if not math.isfinite(value):
            return "—"
        if percent:
            return points_diff(value, small=True) if sign else share(value)
        text = f"{value:{'+' if sign else ''}.{digits}f}"
        return f"{0:.{digits}f}" if float(text) == 0 else text.replace("-", "−")

    interval = f"{show(shift.ci_low, sign=True)} to {show(shift.ci_high, sign=True)}"
    return {
        "when": f"{shift.window} after {shift.milestone}",
        "metric": METRIC_NAMES.get(shift.metric, shift.metric),
        "baseline": show(shift.baseline),
        "after": show(shift.after),
        "diff": show(shift.diff, sign=True),
        "interval": interval if math.isfinite(shift.ci_low) else "no posts on one side",
        "p": p_value(shift.p_value),
        "n": f"{shift.n_baseline:,} / {shift.n_after:,}",
        "direction": shift_direction(shift),
    }


def spike_row(spike: Spike, analysis: Analysis, zone: ZoneInfo) -> dict[str, str]:
    peak = f"{spike.peak_value:,.0f}" if spike.kind == "volume" else f"{spike.peak_value:+.2f}"
    return {
        "kind": spike.kind,
        "start": local(spike.start, zone),
        "peak": local(spike.peak, zone),
        "end": local(spike_span(spike, analysis.bin)[1], zone),  # the last bin's end, as its section says
        "peak_value": peak,
        "size": spike_size(spike, analysis),
        "z": f"{spike.z:.1f}",
    }


# ---- the drill-down: a section per spike, example posts per driver term and aspect, links to them ----

SPOT_MIN_WIDTH = {"timeline.png": 2.0, "timeline-small.png": 7.0}  # % of the image: about 22 px, a fingertip


def drill_context(analysis: Analysis, drill: Drilldown, spots: dict[str, list[SpikeSpot]]) -> dict[str, Any]:
    """The drill-down's part of the page: sections with their anchors, and the links that lead there."""
    zone = ZoneInfo(analysis.timezone)
    return {
        "spike_sections": [spike_section(detail, analysis, zone) for detail in drill.spikes],
        "spike_anchors": [detail.anchor for detail in drill.spikes],
        "driver_rows": driver_rows(analysis, drill, zone),
        "aspect_rows": aspect_rows(analysis, drill, zone),
        "driver_note": driver_examples_note(),
        "no_driver_example": no_driver_example(),
        "spots": {name: spot_links(found, drill, analysis, SPOT_MIN_WIDTH[name]) for name, found in spots.items()},
    }


def spike_section(detail: SpikeDetail, analysis: Analysis, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "anchor": detail.anchor,
        "title": f"Spike {detail.number}: {detail.spike.kind}, {local(detail.start, zone)} to {local(detail.end, zone)}",
        "size": spike_size(detail.spike, analysis),
        "volume": spike_volume_note(detail, analysis),
        "reposts": repost_note(detail),
        "reference": term_reference(analysis),
        "reference_column": "the rest" if analysis.baseline_fallback else "the baseline",
        "engaged": [example_row(post, zone) for post in detail.engaged],
        "negative": [example_row(post, zone) for post in detail.negative],
        "terms": [(d.term, f"{d.z:.1f}", f"{d.count_after:,}", f"{d.count_baseline:,}") for d in detail.terms],
        "hashtags": [(d.term, f"{d.z:.1f}", f"{d.count_after:,}", f"{d.count_baseline:,}") for d in detail.hashtags],
    }


def example_row(post: Example, zone: ZoneInfo) -> dict[str, Any]:
    """A post as the page shows it; its link only when it is a web address (never javascript: or data:)."""
    web = post.url is not None and post.url.startswith(("https://", "http://"))
    return {
        "when": local(post.created_at, zone),
        "source": post.source,
        "author": post.author or "—",
        "text": post.text,
        "url": post.url if web else None,
        "compound": f"{post.compound:+.2f}".replace("-", "−"),
        "engagement": f"{post.engagement:,}",
        "reposts": f"{post.reposts:,}",
    }


def driver_rows(analysis: Analysis, drill: Drilldown, zone: ZoneInfo) -> list[dict[str, Any]]:
    """Each driver term with its numbers and examples; the anchor is numbered (a term is user text)."""
    return [
        {
            "anchor": f"term-{number}",
            "term": driver.term,
            "z": f"{driver.z:.1f}",
            "after": f"{driver.count_after:,}",
            "baseline": f"{driver.count_baseline:,}",
            "examples": [example_row(post, zone) for post in drill.drivers.get(driver.term, [])],
        }
        for number, driver in enumerate(analysis.drivers, 1)
    ]


def aspect_rows(analysis: Analysis, drill: Drilldown, zone: ZoneInfo) -> list[dict[str, Any]]:
    return [
        {
            "anchor": f"aspect-{number}",
            "aspect": aspect.aspect,
            "posts": f"{aspect.posts:,}",
            "share": share(aspect.share),
            "tone": "—" if aspect.mean_compound is None else f"{aspect.mean_compound:+.2f}".replace("-", "−"),
            "examples": [example_row(post, zone) for post in drill.aspects.get(aspect.aspect, [])],
        }
        for number, aspect in enumerate(analysis.aspects, 1)
    ]


def spot_links(spots: list[SpikeSpot], drill: Drilldown, analysis: Analysis, min_width: float) -> list[dict[str, str]]:
    """A link per spike group of a timeline, placed in % over the image (so it scales with it), at least
    min_width wide around the span's middle."""
    links = []
    for spot in spots:
        detail = drill.spike(spot.spike)
        if detail is None:
            continue
        width = max(spot.width, min_width)
        left = spot.left + spot.width / 2 - width / 2
        style = f"left:{left:.2f}%;top:{spot.top:.2f}%;width:{width:.2f}%;height:{spot.height:.2f}%"
        label = f"Spike {detail.number}, {spike_size(spot.spike, analysis)}: its posts and terms"
        links.append({"anchor": detail.anchor, "style": style, "label": label})
    return links
