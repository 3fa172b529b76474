"""`report`: each event's posts streamed into its Analysis, then dashboards/<event>/ written from it."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from monitor.pipeline.companion import companion_for
from monitor.pipeline.runlog import recorded_run
from monitor.pipeline.workspace import Workspace

if TYPE_CHECKING:
    from monitor.analysis import Analysis, AnalysisAccumulator
    from monitor.report import ReportResult


def analyze_event(ws: Workspace, event_name: str, full: bool = False, companion: Executor | None = None) -> Analysis:
    """An event's Analysis from its per-day parts: stored sums of unchanged days, the changed days read again.

    full: read every day again (the same numbers; for when stored parts are in doubt). Only per-bin and
    per-window sums, term counts and the top posts stay in memory, never all the texts.
    companion: a second process that sums the later days when there are many to read (else all are read here).
    """
    from monitor.pipeline.analysis_parts import accumulate_event

    event = ws.config.event(event_name)
    return finish_analysis(ws, event.name, accumulate_event(ws, event, full=full, companion=companion))


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


def report(
    ws: Workspace,
    event_name: str | None = None,
    analyse: Callable[[Workspace, str], Analysis] | None = None,
    full: bool = False,
) -> list[ReportResult]:
    """Write dashboards/<event>/ for one event (or every configured event); return what was written.

    compare.png overlays every configured event with posts in the store, so each is analysed once.
    analyse: how an event is analysed (default analyze_event; report_dask passes the Dask one).
    full: analyze_event reads every day again instead of reusing the stored day parts.
    A big store on a machine with a core idle gets a companion process (the default analysis only): it sums
    the later days of posts and draws some of the charts.
    """
    selected = [event.name for event in ws.config.selected_events(event_name)]
    with companion_for(ws) if analyse is None else nullcontext() as companion:
        analyse = analyse or (lambda ws, name: analyze_event(ws, name, full=full, companion=companion))
        stored = set(ws.store.event_names())
        analyses = {name: analyse(ws, name) for name in _events_to_analyse(ws, selected, stored)}
        comparable = [analysis for name, analysis in analyses.items() if name in stored]
        return [_write_one(ws, analyses[name], comparable, companion) for name in selected]


def _write_one(ws: Workspace, analysis: Analysis, comparable: list[Analysis], companion: Executor | None) -> ReportResult:
    from monitor.pipeline.drilldown import drill_down
    from monitor.report import write_report

    with recorded_run(ws.store, "report", analysis.event, tally=lambda: (analysis.coverage.posts, 0, 0.0)) as run:
        written = write_report(analysis, comparable, ws.config.out_dir(), drill_down(ws, analysis), companion)
        run.message = str(written.folder)
    return written


def _events_to_analyse(ws: Workspace, selected: list[str], stored: set[str]) -> list[str]:
    """The selected events, then the other configured events that have posts (for the comparison)."""
    others = [event.name for event in ws.config.events if event.name in stored and event.name not in selected]
    return selected + others
