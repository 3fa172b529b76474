"""A store that dies between two pages, like a process killed mid-collect (shared by the source tests)."""

from __future__ import annotations

from typing import Any

from monitor.store import AddResult, Store


class KilledError(BaseException):
    """Stands in for the process being killed: nothing catches it."""


class StoreKilledOnThirdPage(Store):
    """A store whose third add_posts never happens, like a process killed between page 2 and page 3."""

    calls = 0
    run_at_kill: Any = None  # the run-log row as a SIGKILL would leave it

    def add_posts(self, event_name: str, posts: Any, *args: Any, **kwargs: Any) -> AddResult:
        type(self).calls += 1
        if type(self).calls == 3:
            type(self).run_at_kill = self.recent_runs(1)[0]
            raise KilledError
        return super().add_posts(event_name, posts, *args, **kwargs)
