"""An event's analysis from per-day parts, so a report costs in proportion to what changed.

Each UTC day of an event's posts has its AnalysisAccumulator sums stored (store.analysis_parts). The store raises
a day's version with every write that can change its numbers (a post linked or unlinked, a score written), in
that write's transaction; a report recomputes only the days whose stored state is older than their version or
was computed with other settings or code (the fingerprint), from a range read of that day's posts, and merges
the stored sums of the others. A full recompute (the first report, `--full`, changed settings)
reads all the posts in one stream and cuts it into the same day parts, in the same chunks, merged in the same
order, so both give the same numbers, bit for bit.

Days are independent, so when there are many posts to read and the report has a companion process
(pipeline/companion.py), the companion reads and sums the later days to compute (a little under half of their
posts) while this one does the earlier ones; it hands back the days' pickled states, and this process stores
them and merges every day in day order, as if it had read them itself.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import BrokenExecutor, Executor, Future
from contextlib import suppress
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cached_property
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.config import Config, EventConfig
from monitor.pipeline.companion import SHARED_FROM
from monitor.pipeline.workspace import Workspace, current_scorer, open_workspace
from monitor.store import AnalysisPart, day_key

if TYPE_CHECKING:
    import pandas as pd

    from monitor.analysis import AnalysisAccumulator

ANALYSIS_CHUNK = 50_000  # posts in memory at once while analysing (about 60 MB with their texts)
STATE_FORMAT = 1  # raise when what state() holds changes shape outside monitor/analysis.py
SHARE = 0.40  # of those posts, what the second process reads: less than half, as it starts a second later
# (1M posts, quiet machine: at 0.45 the report process waited 1.4-1.9 s for it, at 0.40 0.2-0.3 s)

Span = tuple[datetime | None, datetime | None]  # [since, until) in naive UTC; None: no bound
WHOLE_TIME_LINE: Span = (None, None)
DayStates = list[tuple[str, bytes]]  # (day, its pickled state) in day order


def accumulate_event(
    ws: Workspace, event: EventConfig, full: bool = False, companion: Executor | None = None, shared_from: int = SHARED_FROM
) -> AnalysisAccumulator:
    """The event's accumulator: stored day parts where current, the other days (every day with full) recomputed.

    With a companion, when the days to read hold `shared_from` posts or more (of every event: a count on the
    time index), the companion reads and sums the later days (about SHARE of their posts) while this process
    does the earlier; the day states are merged here in day order either way, so the numbers are the same.
    """
    fingerprint = parts_key(ws, event)
    parts = ws.store.analysis_parts(event.name)
    if full or parts is None or not any(part.current(fingerprint) for part in parts.values()):
        return _accumulate_all(ws, event, fingerprint, companion, shared_from)  # nothing to reuse: one read beats a query per day
    stale = sorted(day for day, part in parts.items() if not part.current(fingerprint))
    theirs = shares(ws, stale, shared_from)[1] if companion is not None else []  # shares counts each day's posts
    elsewhere = _Elsewhere(companion, ws, event, [day_span(day) for day in theirs], empty=set(theirs))
    total = analysis_accumulator(ws, event)
    for day, part in sorted(parts.items()):
        # one day's state at a time: all at once would hold them all (about 0.7 x the size of the texts)
        stored = ws.store.analysis_state(event.name, day) if part.current(fingerprint) else None
        if stored is not None:
            total.merge(_restored(ws, event, stored))
            continue
        # a stale day, or a current one whose state was lost: read again, here or by the companion
        fed = _received(ws, event, elsewhere, day) if day in theirs else _computed(ws, event, [day_span(day)], {day})
        for found, accumulator in fed:
            _save(ws, event.name, found, replace(part, fingerprint=fingerprint), accumulator)
            total.merge(accumulator)
    return total


def _accumulate_all(
    ws: Workspace, event: EventConfig, fingerprint: str, companion: Executor | None, shared_from: int
) -> AnalysisAccumulator:
    """Every day recomputed from range reads of all the event's posts (no per-day query), its state stored.

    The versions are read before the posts: a day written meanwhile keeps a newer version and stays stale.
    After this the event counts as listed: every day with posts has its row, and writes add the new ones.
    """
    versions = ws.store.analysis_versions(event.name)
    mine, theirs = halves(ws, shared_from) if companion is not None else ([WHOLE_TIME_LINE], [])
    elsewhere = _Elsewhere(companion, ws, event, theirs, empty=set())
    total = analysis_accumulator(ws, event)
    for day, fed in chain(_computed(ws, event, mine), _received(ws, event, elsewhere)):
        _save(ws, event.name, day, AnalysisPart(versions.get(day, 0), None, fingerprint), fed)
        total.merge(fed)
    ws.store.mark_listed(event.name)
    return total


def day_span(day: str) -> tuple[datetime, datetime]:
    """The UTC day YYYY-MM-DD as [its start, the next day's start), naive."""
    start = datetime.fromisoformat(day)
    return start, start + timedelta(days=1)


def halves(ws: Workspace, shared_from: int) -> tuple[list[Span], list[Span]]:
    """The whole time line as (this process's spans, the other's): cut at the day boundary nearest the post
    that leaves SHARE of them after it."""
    posts = ws.store.post_count()
    middle = ws.store.created_at_of(round(posts * (1 - SHARE))) if posts >= shared_from else None
    if middle is None:
        return [WHOLE_TIME_LINE], []
    day = datetime(middle.year, middle.month, middle.day)
    before = posts * (1 - SHARE)
    cut = min((day, day + timedelta(days=1)), key=lambda at: abs(ws.store.posts_created_between(None, at) - before))
    return [(None, cut)], [(cut, None)]


def shares(ws: Workspace, days: list[str], shared_from: int) -> tuple[list[str], list[str]]:
    """Days in order as (this process's, the other's): the other takes the later days that hold nearest SHARE of
    their posts, or none when they hold fewer than shared_from posts (or are one day)."""
    sizes = [ws.store.posts_created_between(*day_span(day)) for day in days] if len(days) > 1 else [0]
    if sum(sizes) < shared_from or len(days) < 2:
        return days, []
    cut = min(range(1, len(days)), key=lambda at: (abs(sum(sizes[at:]) - sum(sizes) * SHARE), -at))
    return days[:cut], days[cut:]


class _Elsewhere:
    """The days the companion sums: their states as it hands them back, or read here if it was lost (killed,
    out of memory) or there is none."""

    def __init__(self, companion: Executor | None, ws: Workspace, event: EventConfig, spans: list[Span], empty: set[str]):
        self._ws, self._event, self._spans, self._empty = ws, event, spans, empty
        self._asked: Future[DayStates] | None = None
        if spans and companion is not None:
            with suppress(BrokenExecutor):
                self._asked = companion.submit(day_states, ws.config, event.name, spans, empty)

    @cached_property
    def states(self) -> DayStates:
        """(day, its pickled state) in day order, waited for here."""
        if self._asked is not None:
            with suppress(BrokenExecutor):
                return self._asked.result()
        return [(day, _pickled(fed)) for day, fed in _computed(self._ws, self._event, self._spans, self._empty)]


def day_states(config: Config, event_name: str, spans: list[Span], empty: set[str]) -> DayStates:
    """The pickled states of the days in spans (_computed), from this process's own connection to the store."""
    ws = open_workspace(config=config)
    try:
        return [(day, _pickled(fed)) for day, fed in _computed(ws, ws.config.event(event_name), spans, empty)]
    finally:
        ws.close()


def _received(
    ws: Workspace, event: EventConfig, elsewhere: _Elsewhere, day: str | None = None
) -> Iterator[tuple[str, AnalysisAccumulator]]:
    """(day, its accumulator) of the days summed elsewhere (only the given day's, if one is)."""
    for found, state in elsewhere.states:
        if day is None or found == day:
            yield found, _restored(ws, event, state)


def _computed(
    ws: Workspace, event: EventConfig, spans: list[Span], empty: set[str] | None = None
) -> Iterator[tuple[str, AnalysisAccumulator]]:
    """(day, its accumulator) of every day with posts in spans, in order; the days in `empty` also when they
    have none (a stale day whose posts all left the event)."""
    seen: set[str] = set()
    for span in spans:
        stream = ws.store.iter_analysis_frames(event.name, current_scorer(ws), ANALYSIS_CHUNK // 5, *span)
        for day, frames in day_pieces(stream, ANALYSIS_CHUNK):
            fed = analysis_accumulator(ws, event)
            for frame in frames:
                fed.add(frame)
            seen.add(day)
            yield day, fed
    for day in sorted((empty or set()) - seen):
        yield day, analysis_accumulator(ws, event)


def day_pieces(frames: Iterable[pd.DataFrame], chunk: int) -> Iterator[tuple[str, Iterator[pd.DataFrame]]]:
    """A created_at-ordered stream of frames regrouped as a day read gives them: (day, that day's frames),
    each day's posts cut every `chunk` rows from the day's start. The same frames in, the same sums out.
    """
    from itertools import groupby

    for day, pieces in groupby(_day_chunks(frames, chunk), key=lambda pair: pair[0]):
        yield day, (frame for _, frame in pieces)


def _day_chunks(frames: Iterable[pd.DataFrame], chunk: int) -> Iterator[tuple[str, pd.DataFrame]]:
    """(day, frame of at most `chunk` posts of that day), a frame given as soon as it is full: memory stays flat."""
    day: str | None = None
    pending: list[pd.DataFrame] = []
    size = 0
    for frame in frames:
        for key, piece in _split_by_day(frame):
            if key != day and pending:
                yield str(day), _joined(pending)
                pending, size = [], 0
            day = key
            while size + len(piece) >= chunk:
                take = chunk - size
                yield key, _joined([*pending, piece.iloc[:take]])
                pending, size, piece = [], 0, piece.iloc[take:]
            if len(piece):
                pending.append(piece)
                size += len(piece)
    if pending:
        yield str(day), _joined(pending)


def _joined(pieces: list[pd.DataFrame]) -> pd.DataFrame:
    """One frame of the pieces; a single piece (a day inside one fetched frame) without a copy."""
    import pandas as pd

    return pieces[0].reset_index(drop=True) if len(pieces) == 1 else pd.concat(pieces, ignore_index=True)


def _split_by_day(frame: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """The frame's rows per UTC day, found by binary search on the sorted created_at (no per-row parsing)."""
    import pandas as pd

    times = frame["created_at"]  # SQLite's text (2012-12-18 10:00:00.000000) or naive UTC datetimes
    text = pd.api.types.is_string_dtype(times)
    start, last = 0, day_key(times.iloc[-1])
    day = day_key(times.iloc[0])
    while day != last:
        following = (pd.Timestamp(day) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
        end = int(times.searchsorted(following if text else pd.Timestamp(following)))
        yield day, frame.iloc[start:end]
        start, day = end, day_key(times.iloc[end])
    yield day, frame.iloc[start:]


def _restored(ws: Workspace, event: EventConfig, stored: bytes) -> AnalysisAccumulator:
    # our own database's bytes, written by _save below; the fingerprint pins the code that wrote them
    return analysis_accumulator(ws, event).restore(pickle.loads(stored))  # noqa: S301


def _pickled(fed: AnalysisAccumulator) -> bytes:
    return pickle.dumps(fed.state(), protocol=pickle.HIGHEST_PROTOCOL)


def _save(ws: Workspace, event_name: str, day: str, part: AnalysisPart, fed: AnalysisAccumulator) -> None:
    """One day's sums, stored as computed at part.version (read before reading the posts)."""
    ws.store.save_analysis_state(event_name, day, part, _pickled(fed))


def stored_terms(ws: Workspace, event: EventConfig, days: Iterable[str]) -> dict[str, Counter[str]]:
    """The terms of each day's scored posts (TermCounts.prior) as its current stored part counted them, for
    the days that have one and whose counts are whole (no rare term dropped)."""
    wanted = list(days)
    if not wanted:
        return {}
    fingerprint = parts_key(ws, event)
    parts = ws.store.analysis_parts(event.name) or {}
    found = {}
    for day in wanted:
        stored = ws.store.analysis_state(event.name, day) if day in parts and parts[day].current(fingerprint) else None
        terms = None if stored is None else _restored(ws, event, stored).terms
        if terms is not None and not terms.dropped:
            found[day] = terms.prior
    return found


def parts_key(ws: Workspace, event: EventConfig) -> str:
    """What a stored day state depends on besides its posts: the event's settings, the zone, the scorer, the code."""
    import numpy as np
    import pandas as pd

    from monitor import analysis, examples

    inputs = {
        "event": event.model_dump(mode="json"),
        "milestones": ws.config.milestones_utc(event),
        "timezone": ws.config.timezone,
        "scorer": current_scorer(ws),
        "analysis_code": [hashlib.sha256(Path(str(code.__file__)).read_bytes()).hexdigest() for code in (analysis, examples)],
        "libraries": [pd.__version__, np.__version__],
        "format": STATE_FORMAT,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def analysis_accumulator(ws: Workspace, event: EventConfig) -> AnalysisAccumulator:
    """An empty AnalysisAccumulator for one event with the workspace's settings."""
    from monitor.analysis import AnalysisAccumulator

    return AnalysisAccumulator(
        event=event, milestones=ws.config.milestones_utc(event), tz=ws.config.timezone, alerts=ws.config.alerts
    )
