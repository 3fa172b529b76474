"""A second process that a big report shares its work with: the later days of posts, then some of the charts.

It is spawned as soon as the report knows the store is big (SHARED_FROM posts or more) and a core is idle, so
it imports pandas and the analysis code while this process is still starting; its jobs run one after another,
and after the first it imports matplotlib for the charts. It costs about 25 % more CPU in all (its start, its
own reads), which pays only on a core nobody else is using, and only when there is much to read.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

from monitor import cores
from monitor.quick_exit import skip_last_collection

if TYPE_CHECKING:
    from monitor.pipeline.workspace import Workspace

SHARED_FROM = 200_000  # stored posts from which a report starts a companion (it starts in about a second)
ANALYSIS_MODULES = ("pandas", "monitor.analysis", "monitor.pipeline.analysis_parts")
CHART_MODULES = ("matplotlib.figure", "matplotlib.backends.backend_agg", "monitor.plots")
PARENT_CHECK = 0.5  # seconds between the companion's looks at whether its report process still runs


class Companion(Executor):
    """One spawned process taking jobs in order; what they need is imported before they come."""

    def __init__(self) -> None:
        # spawn, not fork: the parent may hold database connections and the daemon's threads
        self._pool = ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=_started, initargs=(os.getpid(),)
        )
        self._pool.submit(import_modules, ANALYSIS_MODULES)
        self._later = [CHART_MODULES]  # imported after the first job, which should not wait for them

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = self._pool.submit(fn, *args, **kwargs)
        while self._later:
            self._pool.submit(import_modules, self._later.pop())
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.shutdown(wait=False, cancel_futures=True)  # a job still running ends with its process


def _started(parent: int) -> None:
    """In the companion, first: it exits quickly, and with its parent. A report killed outright (SIGKILL, the
    out-of-memory killer) would otherwise leave it waiting for jobs for ever, holding its memory."""
    skip_last_collection()
    threading.Thread(target=_exit_without, args=(parent,), name="companion-watch", daemon=True).start()


def _exit_without(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK)
    os._exit(1)


def import_modules(names: tuple[str, ...]) -> None:
    """Import these modules (in the companion, ahead of the jobs that use them)."""
    for name in names:
        importlib.import_module(name)


@contextmanager
def companion_for(ws: Workspace, shared_from: int = SHARED_FROM) -> Iterator[Companion | None]:
    """A Companion while the block runs when the store holds shared_from posts or more and a core is idle; else None."""
    if ws.store.post_count() < shared_from or not cores.core_idle():  # the count first: 40 ms less a small report
        yield None
        return
    with Companion() as companion:
        yield companion
