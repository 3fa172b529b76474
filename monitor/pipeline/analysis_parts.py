"""An event's analysis from per-day parts, so a report costs in proportion to what changed.

Each UTC day of an event's posts has its AnalysisAccumulator sums stored (store.analysis_parts). The store raises
a day's version with every write that can change its numbers (a post linked or unlinked, a score written), in
that write's transaction; a report recomputes only the days whose stored state is older than their version or
was computed with other settings or code (the fingerprint), from a range read of that day's posts, and merges
the stored sums of the others. A full recompute is the same with every day recomputed: the same day parts,
read in the same chunks and merged in the same order, so both give the same numbers, bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.config import EventConfig
from monitor.pipeline.workspace import Workspace, scorer_spec

if TYPE_CHECKING:
    from monitor.analysis import AnalysisAccumulator
    from monitor.store import AnalysisPart

ANALYSIS_CHUNK = 50_000  # posts in memory at once while analysing (about 60 MB with their texts)
STATE_FORMAT = 1  # raise when what state() holds changes shape outside monitor/analysis.py


def accumulate_event(ws: Workspace, event: EventConfig, full: bool = False) -> AnalysisAccumulator:
    """The event's accumulator: stored day parts where current, the other days (every day with full) recomputed."""
    fingerprint = analysis_fingerprint(ws, event)
    parts = None if full else ws.store.analysis_parts(event.name)
    if parts is None:
        parts = ws.store.list_analysis_days(event.name)
    total = analysis_accumulator(ws, event)
    for day, part in sorted(parts.items()):
        stored = None if full or not part.current(fingerprint) else ws.store.analysis_state(event.name, day)
        total.merge(_restored(ws, event, stored) if stored else _recomputed(ws, event, day, part, fingerprint))
    return total


def _restored(ws: Workspace, event: EventConfig, stored: bytes) -> AnalysisAccumulator:
    # our own database's bytes, written by _recomputed below; the fingerprint pins the code that wrote them
    return analysis_accumulator(ws, event).restore(pickle.loads(stored))  # noqa: S301


def _recomputed(ws: Workspace, event: EventConfig, day: str, part: AnalysisPart, fingerprint: str) -> AnalysisAccumulator:
    """One day's sums from its posts, stored as computed at the version read before reading them."""
    from dataclasses import replace

    fed = analysis_accumulator(ws, event)
    scorer = scorer_spec(ws).key()
    for frame in ws.store.iter_analysis_frames(event.name, scorer, chunk_size=ANALYSIS_CHUNK, day=day):
        fed.add(frame)
    state = pickle.dumps(fed.state(), protocol=pickle.HIGHEST_PROTOCOL)
    ws.store.save_analysis_state(event.name, day, replace(part, fingerprint=fingerprint), state)
    return fed


def analysis_fingerprint(ws: Workspace, event: EventConfig) -> str:
    """What a stored day state depends on besides its posts: the event's settings, the zone, the scorer, the code."""
    import numpy as np
    import pandas as pd

    from monitor import analysis

    inputs = {
        "event": event.model_dump(mode="json"),
        "milestones": ws.config.milestones_utc(event),
        "timezone": ws.config.timezone,
        "scorer": scorer_spec(ws).key(),
        "analysis_code": hashlib.sha256(Path(analysis.__file__).read_bytes()).hexdigest(),
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
