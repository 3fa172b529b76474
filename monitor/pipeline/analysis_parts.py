"""An event's analysis from per-day parts, so a report costs in proportion to what changed.

Each UTC day of an event's posts has its AnalysisAccumulator sums stored (store.analysis_parts). The store raises
a day's version with every write that can change its numbers (a post linked or unlinked, a score written), in
that write's transaction; a report recomputes only the days whose stored state is older than their version or
was computed with other settings or code (the fingerprint), from a range read of that day's posts, and merges
the stored sums of the others. A full recompute (the first report, `--full`, changed settings)
reads all the posts in one stream and cuts it into the same day parts, in the same chunks, merged in the same
order, so both give the same numbers, bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.config import EventConfig
from monitor.pipeline.workspace import Workspace, current_scorer
from monitor.store import AnalysisPart, day_key

if TYPE_CHECKING:
    import pandas as pd

    from monitor.analysis import AnalysisAccumulator

ANALYSIS_CHUNK = 50_000  # posts in memory at once while analysing (about 60 MB with their texts)
STATE_FORMAT = 1  # raise when what state() holds changes shape outside monitor/analysis.py


def accumulate_event(ws: Workspace, event: EventConfig, full: bool = False) -> AnalysisAccumulator:
    """The event's accumulator: stored day parts where current, the other days (every day with full) recomputed."""
    fingerprint = parts_key(ws, event)
    parts = ws.store.analysis_parts(event.name)
    if full or parts is None or not any(part.current(fingerprint) for part in parts.values()):
        return _accumulate_all(ws, event, fingerprint)  # nothing to reuse: one read beats a query per day
    total = analysis_accumulator(ws, event)
    for day, part in sorted(parts.items()):
        stored = ws.store.analysis_state(event.name, day) if part.current(fingerprint) else None
        if stored is not None:
            total.merge(_restored(ws, event, stored))
            continue
        frames = ws.store.iter_analysis_frames(event.name, current_scorer(ws), chunk_size=ANALYSIS_CHUNK, day=day)
        total.merge(_recomputed(ws, event, day, replace(part, fingerprint=fingerprint), frames))
    return total


def _accumulate_all(ws: Workspace, event: EventConfig, fingerprint: str) -> AnalysisAccumulator:
    """Every day recomputed from one read of all the event's posts (no per-day query), its state stored.

    The versions are read before the posts: a day written meanwhile keeps a newer version and stays stale.
    After this the event counts as listed: every day with posts has its row, and writes add the new ones.
    """
    versions = ws.store.analysis_versions(event.name)
    total = analysis_accumulator(ws, event)
    # fetched in fifths of a part's chunk: what waits to fill a day's chunk stays small beside it
    stream = ws.store.iter_analysis_frames(event.name, current_scorer(ws), chunk_size=ANALYSIS_CHUNK // 5)
    for day, frames in day_pieces(stream, ANALYSIS_CHUNK):
        part = AnalysisPart(versions.get(day, 0), None, fingerprint)
        total.merge(_recomputed(ws, event, day, part, frames))
    ws.store.mark_listed(event.name)
    return total


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
    # our own database's bytes, written by _recomputed below; the fingerprint pins the code that wrote them
    return analysis_accumulator(ws, event).restore(pickle.loads(stored))  # noqa: S301


def _recomputed(
    ws: Workspace, event: EventConfig, day: str, part: AnalysisPart, frames: Iterable[pd.DataFrame]
) -> AnalysisAccumulator:
    """One day's sums from its posts, stored as computed at part.version (read before reading the posts)."""
    fed = analysis_accumulator(ws, event)
    for frame in frames:
        fed.add(frame)
    ws.store.save_analysis_state(event.name, day, part, pickle.dumps(fed.state(), protocol=pickle.HIGHEST_PROTOCOL))
    return fed


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
