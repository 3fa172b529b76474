"""`report`: each event's posts streamed into its Analysis, then dashboards/<event>/ written from it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from monitor.config import EventConfig
from monitor.pipeline.runlog import recorded_run
from monitor.pipeline.workspace import Workspace, scorer_spec

if TYPE_CHECKING:
    from monitor.analysis import Analysis, AnalysisAccumulator
    from monitor.report import ReportResult


def analyze_event(ws: Workspace, event_name: str) -> Analysis:
    """Stream an event's posts with the current scores, chunk by chunk, into its Analysis.

    Only per-bin and per-window sums, term counts and the top posts stay in memory, never all the texts.
    """
    event = ws.config.event(event_name)
    accumulator = analysis_accumulator(ws, event)
    for frame in ws.store.iter_analysis_frames(event.name, scorer_spec(ws).key(), chunk_size=ANALYSIS_CHUNK):
        accumulator.add(frame)
    return finish_analysis(ws, event.name, accumulator)


def finish_analysis(ws: Workspace, event_name: str, accumulator: AnalysisAccumulator) -> Analysis:
    """The Analysis of a fed accumulator, with the event's stored hourly counts and the feeds read."""
    import pandas as pd

    from monitor.pipeline.validation import latest_validation

    counts = pd.DataFrame(ws.store.counts(event_name), columns=["source", "bucket_start", "count"])
    analysis = accumulator.finish(
        counts,
        generated_at=datetime.now(UTC),
        feeds_read=ws.store.feeds_read(event_name),
        collected_until=ws.store.last_collected(event_name),
    )
    analysis.validation = latest_validation(ws, event_name)
    return analysis


ANALYSIS_CHUNK = 50_000  # posts in memory at once while analysing (about 60 MB with their texts)


def analysis_accumulator(ws: Workspace, event: EventConfig) -> AnalysisAccumulator:
    """An empty AnalysisAccumulator for one event with the workspace's settings."""
    from monitor.analysis import AnalysisAccumulator

    return AnalysisAccumulator(
        event=event, milestones=ws.config.milestones_utc(event), tz=ws.config.timezone, alerts=ws.config.alerts
    )


def report(
    ws: Workspace, event_name: str | None = None, analyse: Callable[[Workspace, str], Analysis] | None = None
) -> list[ReportResult]:
    """Write dashboards/<event>/ for one event (or every configured event); return what was written.

    compare.png overlays every configured event with posts in the store, so each is analysed once.
    analyse: how an event is analysed (default analyze_event; report_dask passes the Dask one).
    """

    selected = [event.name for event in ws.config.selected_events(event_name)]
    stored = set(ws.store.event_names())
    analyses = {name: (analyse or analyze_event)(ws, name) for name in _events_to_analyse(ws, selected, stored)}
    comparable = [analysis for name, analysis in analyses.items() if name in stored]
    return [_write_one(ws, analyses[name], comparable) for name in selected]


def _write_one(ws: Workspace, analysis: Analysis, comparable: list[Analysis]) -> ReportResult:
    from monitor.pipeline.drilldown import drill_down
    from monitor.report import write_report

    with recorded_run(ws.store, "report", analysis.event, tally=lambda: (analysis.coverage.posts, 0, 0.0)) as run:
        written = write_report(analysis, comparable, ws.config.out_dir(), drill_down(ws, analysis))
        run.message = str(written.folder)
    return written


def _events_to_analyse(ws: Workspace, selected: list[str], stored: set[str]) -> list[str]:
    """The selected events, then the other configured events that have posts (for the comparison)."""
    others = [event.name for event in ws.config.events if event.name in stored and event.name not in selected]
    return selected + others
