"""Real companion processes for tests: one that records the jobs asked of it, and one already lost."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from monitor.pipeline.companion import Companion


class RecordingCompanion(Companion):
    """A Companion that records the name of every job asked of it (the jobs still run in its process)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.asked.append(fn.__name__)
        return super().submit(fn, *args, **kwargs)


@contextmanager
def lost_companion() -> Iterator[RecordingCompanion]:
    """A companion whose process is killed (SIGKILL) before any work is asked of it (`asked` starts empty)."""
    with RecordingCompanion() as companion:
        os.kill(companion.submit(os.getpid).result(), signal.SIGKILL)
        companion.asked.clear()
        yield companion
