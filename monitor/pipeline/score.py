"""`score`: every post the current scorer has not scored yet, chunk by chunk over worker processes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from monitor.pipeline.runlog import recorded_run
from monitor.pipeline.workspace import ProgressCallback, Workspace, current_scorer, scorer_spec


@dataclass
class ScoreResult:
    """What `score` did."""

    scorer: str  # the scorer version key stored with each score
    scored: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # "skipped:language", "skipped:bot" → posts
    reused: int = 0  # posts whose identical text was scored once for several posts
    total: int = 0  # posts this run looked at (scored + skipped)
    workers: int = 1


def score(ws: Workspace, workers: int | None = None, on_progress: ProgressCallback | None = None) -> ScoreResult:
    """Score every post the current scorer has not scored yet, chunk by chunk; return the counts.

    workers: processes (None = config.scoring.workers; 0 = all cores). Reading the next chunk and
    writing the last one overlap with the workers' scoring of the current one.
    """
    from monitor.scoring import BatchScorer

    count = workers if workers is not None else ws.config.scoring.workers
    count = count or os.cpu_count() or 1
    batch = BatchScorer(scorer_spec(ws), workers=count)
    result = ScoreResult(scorer=batch.key, workers=count)
    with recorded_run(ws.store, "score", tally=lambda: (result.total, result.scored, 0.0)) as run:
        try:
            _score_chunks(ws, batch, result, on_progress)
        finally:
            batch.close()
        run.message = f"scorer {batch.key}"
    return result


def _score_chunks(ws: Workspace, batch: Any, result: ScoreResult, on_progress: ProgressCallback | None) -> None:
    pending = None
    for chunk in ws.store.iter_unscored(batch.key, ws.config.scoring.chunk_size):
        # the next chunk goes to the workers before the last one is written, so they never wait for the database
        submitted = batch.submit(chunk)
        if pending is not None:
            write_chunk(ws, batch.collect(pending), result, on_progress)
        pending = submitted
    if pending is not None:
        write_chunk(ws, batch.collect(pending), result, on_progress)


def write_chunk(ws: Workspace, chunk: Any, result: ScoreResult, on_progress: ProgressCallback | None) -> None:
    ws.store.add_scores(chunk.rows)
    result.scored += chunk.scored
    result.reused += chunk.reused
    result.total += len(chunk.rows)
    for reason, posts in chunk.skipped.items():
        result.skipped[reason] = result.skipped.get(reason, 0) + posts
    if on_progress is not None:
        on_progress(len(chunk.rows))


def count_unscored(ws: Workspace) -> int:
    """Posts the current scorer has not seen yet (the progress bar's total)."""
    return ws.store.count_unscored(current_scorer(ws))
