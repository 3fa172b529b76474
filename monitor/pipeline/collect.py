"""`collect`: new posts (or hourly counts) from each event's live sources, page by page with its cursor."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime

from monitor.config import EventConfig
from monitor.errors import MonitorError, NotConfiguredError, UsageCapError, UsageError
from monitor.pipeline.runlog import recorded_run
from monitor.pipeline.workspace import Workspace
from monitor.sources.base import Page, Source
from monitor.sources.budget import allowance
from monitor.store import CursorUpdate, RunProgress

log = logging.getLogger(__name__)


@dataclass
class SourceOutcome:
    """What one source did for one event in a collect run."""

    event: str
    source: str
    status: str  # "ok", "failed" or "skipped"
    kind: str = "posts"  # "posts" (search) or "counts" (volume only)
    read: int = 0  # posts read from the API (what is billed)
    new: int = 0  # posts not stored before
    malformed: int = 0  # items the source logged and left out
    counted: int = 0  # posts counted by a counts endpoint
    hours: int = 0  # hourly buckets stored by a counts endpoint
    cost_usd: float = 0.0  # estimated price of this run
    message: str = ""  # why it failed or was skipped, or how it stopped
    run_id: int | None = None  # its row in the run log, kept current page by page
    usage_capped: bool = False  # the platform answered with its usage cap: the run asks it nothing more


@dataclass
class CollectResult:
    """One outcome per event and source, in the order they ran."""

    outcomes: list[SourceOutcome] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(outcome.status == "failed" for outcome in self.outcomes)


def collect(
    ws: Workspace,
    event_name: str | None = None,
    source_name: str | None = None,
    counts: bool = False,
    stop: threading.Event | None = None,
) -> CollectResult:
    """Pull new posts (or hourly counts) for each event from each of its live sources.

    Each page is stored with its cursor in one transaction. A source that fails or is not configured
    is reported in its outcome and the others still run; a set `stop` ends the run after the current page.
    """
    plan = _collect_plan(ws.config.selected_events(event_name), source_name)
    result = CollectResult()
    opened: dict[str, Source | MonitorError] = {}
    try:
        for event, name in plan:
            if stop is not None and stop.is_set():
                break
            if name not in opened:
                opened[name] = _open_source(ws, name, stop)
            outcome = _collect_one(ws, event, opened[name], name, counts)
            result.outcomes.append(outcome)
            if outcome.usage_capped:
                opened[name] = _retire_capped(opened[name], name)
    finally:
        for source in opened.values():
            if isinstance(source, Source):
                source.close()
    return result


def _collect_plan(events: list[EventConfig], source_name: str | None) -> list[tuple[EventConfig, str]]:
    plan = [(event, name) for event in events for name in event.sources if source_name in (None, name)]
    if source_name is not None and not plan:
        used = sorted({name for event in events for name in event.sources}) or ["none"]
        raise UsageError(f"--source {source_name!r}: no selected event collects from it (sources: {', '.join(used)})")
    return plan


def _open_source(ws: Workspace, name: str, stop: threading.Event | None) -> Source | MonitorError:
    """The source built from its config with the run's stop flag and session store, or the reason it is
    switched off (logged once, loudly)."""
    from monitor.sources import SOURCE_CLASSES, source_class

    try:
        if name not in SOURCE_CLASSES:
            raise NotConfiguredError(f"{name} source skipped: this version has no collector for it")
        return source_class(name).open(ws.config, stop=stop, sessions=ws.store)
    except NotConfiguredError as error:
        log.warning("%s", error)
        return error
    except ImportError as error:
        log.warning("%s source skipped: cannot load its module (%s)", name, error)
        return NotConfiguredError(f"{name} source skipped: cannot load its module ({error})")


def _collect_one(
    ws: Workspace,
    event: EventConfig,
    source: Source | MonitorError,
    name: str,
    counts: bool,
) -> SourceOutcome:
    outcome = SourceOutcome(event.name, name, "ok", kind="counts" if counts else "posts")
    if isinstance(source, MonitorError):
        outcome.status, outcome.message = "skipped", str(source)
        return outcome
    if not counts and not _apply_budget(ws, source, outcome):
        return outcome
    tally = lambda: (outcome.read, outcome.new, outcome.cost_usd)  # noqa: E731 - read when the run ends
    with recorded_run(ws.store, "counts" if counts else "collect", event.name, name, tally) as run:
        outcome.run_id = run.id
        _run_source(ws, event, source, outcome, counts)
        run.status, run.message = outcome.status, outcome.message or None
    return outcome


def _run_source(ws: Workspace, event: EventConfig, source: Source, outcome: SourceOutcome, counts: bool) -> None:
    """Store the source's pages (or counts); a source error becomes the outcome, anything else escapes."""
    try:
        (_store_counts if counts else _store_pages)(ws, event, source, outcome)
    except NotConfiguredError as error:
        outcome.status, outcome.message = "skipped", str(error)
    except MonitorError as error:
        outcome.status, outcome.message = "failed", f"{error}; the cursor stays at the last stored page"
        outcome.usage_capped = isinstance(error, UsageCapError)
        log.debug("collect %s from %s failed: %s", event.name, source.name, error)  # in the outcome, reported once


def _retire_capped(source: Source | MonitorError, name: str) -> MonitorError:
    """Close a source whose usage cap is reached; its remaining outcomes this run are skipped with this reason."""
    if isinstance(source, Source):
        source.close()
    return UsageCapError(
        f"{name} source skipped: its usage cap was reached earlier in this run; the next run tries again"
    )


def _apply_budget(ws: Workspace, source: Source, outcome: SourceOutcome) -> bool:
    """Set a metered source's read limit from its per-run and monthly budgets; False when the month's is spent."""
    granted = allowance(getattr(ws.config.sources, source.name, None), lambda: spend_this_month(ws, source.name)[0])
    if granted.refused is not None:
        outcome.status, outcome.message = "skipped", granted.refused
        log.warning("%s source skipped: %s", source.name, granted.refused)
        return False
    if granted.posts is not None:
        source.read_limit = granted.posts
    return True


def _store_pages(ws: Workspace, event: EventConfig, source: Source, outcome: SourceOutcome) -> None:
    cursor = _stored_cursor(ws, event.name, source.name)
    for page in source.search(event, cursor):
        updates = [CursorUpdate(event.name, source.name, kind, value) for kind, value in page.cursor.items()]
        feed_read = (source.name, page.feed, page.read) if page.feed is not None else None
        added = ws.store.add_posts(
            event.name, page.posts, cursors=updates, progress=_progress(outcome, page), feed_read=feed_read
        )
        outcome.read += page.read
        outcome.new += added.new
        outcome.malformed += page.skipped
        outcome.cost_usd += page.cost_usd
        if source.read_limit is not None and outcome.read >= source.read_limit:
            outcome.message = f"stopped at the read limit of {source.read_limit} posts; the next run resumes"
            break
    if source.stop is not None and source.stop.is_set():
        outcome.message = "stopped on request; the next run resumes"
    if outcome.malformed:
        outcome.message = "; ".join(filter(None, [outcome.message, f"{outcome.malformed} malformed posts skipped"]))


def _progress(outcome: SourceOutcome, page: Page) -> RunProgress | None:
    """The run's totals including this page, stored with it: a killed run still shows what it read and cost."""
    if outcome.run_id is None:
        return None
    return RunProgress(outcome.run_id, outcome.read + page.read, outcome.new, outcome.cost_usd + page.cost_usd)


def _store_counts(ws: Workspace, event: EventConfig, source: Source, outcome: SourceOutcome) -> None:
    cursor = _stored_cursor(ws, event.name, source.name)
    for page in source.counts(event, cursor):
        updates = [CursorUpdate(event.name, source.name, kind, value) for kind, value in page.cursor.items()]
        ws.store.add_counts(event.name, source.name, page.buckets, cursors=updates)
        outcome.hours += len(page.buckets)
        outcome.counted += sum(count for _start, count in page.buckets)
        outcome.cost_usd += page.cost_usd


def _stored_cursor(ws: Workspace, event_name: str, source_name: str) -> dict[str, str]:
    return {
        row["kind"]: row["value"]
        for row in ws.store.cursors()
        if row["event"] == event_name and row["source"] == source_name
    }


def spend_this_month(ws: Workspace, source_name: str = "x") -> tuple[int, float]:
    """Posts read and estimated cost of a source's runs since the 1st of this month (config's time zone)."""
    now = datetime.now(ws.config.tz)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return ws.store.spend_since(month_start, source_name)
