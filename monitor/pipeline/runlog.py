"""The run log: each verb's run recorded once — started, then finished with its counts, or failed with its cause."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from monitor.store import Store

Tally = tuple[int, int, float]  # posts read, posts new, estimated cost in USD


@dataclass
class Run:
    """A run in progress: its row in the run log, and how it ends when nothing escapes (the body sets these)."""

    id: int
    status: str = "ok"
    message: str | None = None


@contextmanager
def recorded_run(
    store: Store,
    verb: str,
    event: str | None = None,
    source: str | None = None,
    tally: Callable[[], Tally] = lambda: (0, 0, 0.0),
) -> Iterator[Run]:
    """Start a run in the log; finish it with the body's status and `tally()`, or as failed when an error escapes.

    `tally` is asked at the end, so a run that fails half-way still shows what it had read and cost.
    """
    run = Run(store.start_run(verb, event, source))
    try:
        yield run
    except BaseException as error:
        store.finish_run(run.id, "failed", *tally(), message=failure_text(error))
        raise
    store.finish_run(run.id, run.status, *tally(), message=run.message)


def failure_text(error: BaseException) -> str:
    """What the run log keeps of an error: its kind and message, bounded."""
    return f"{error.__class__.__name__}: {error}"[:500]
