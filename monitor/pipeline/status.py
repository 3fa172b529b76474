"""`status`: posts and scores per event and source, cursors, the last runs and this month's X spend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.pipeline.collect import spend_this_month
from monitor.pipeline.workspace import Workspace, current_scorer
from monitor.store import RunRecord


@dataclass
class EventStatus:
    """Counts for one event."""

    name: str
    posts_by_source: dict[str, int]
    scored: dict[str, int]  # status → count, plus "unscored"


@dataclass
class StatusReport:
    """What `status` shows."""

    database: str
    events: list[EventStatus]
    cursors: list[dict[str, Any]]
    runs: list[RunRecord]
    x_spend: tuple[int, float, int] | None = None  # posts read this month, estimated USD, monthly budget


def status(ws: Workspace) -> StatusReport:
    """Posts and scores per event and source, stored cursors and the last runs."""
    by_event: dict[str, dict[str, int]] = {event.name: {} for event in ws.config.events}
    for event_name, source, posts in ws.store.post_counts_by_source():
        by_event.setdefault(event_name, {})[source] = posts
    scorer = current_scorer(ws)
    events = [
        EventStatus(name, sources, ws.store.scored_counts(name, scorer) if scorer else {})
        for name, sources in by_event.items()
    ]
    return StatusReport(
        database=_safe_url(ws.config.database_url()),
        events=events,
        cursors=ws.store.cursors(),
        runs=ws.store.recent_runs(10),
        x_spend=_x_spend(ws),
    )


def _x_spend(ws: Workspace) -> tuple[int, float, int] | None:
    """This month's X reads and cost against the budget, when an event collects from X."""
    if not any("x" in event.sources for event in ws.config.events):
        return None
    posts, usd = spend_this_month(ws, "x")
    return posts, usd, ws.config.sources.x.monthly_post_budget


def _safe_url(url: str) -> str:
    """A database URL without its password, fit for printing."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
