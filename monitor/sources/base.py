"""The Source contract every platform implements: a name, a constructor from config, a paged search.

A source yields Page objects newest-first or in whatever order its API pages; each Page carries
the cursor values to store in the same transaction as its posts, so a run killed between two pages
resumes from the last stored page without gaps or duplicates.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Protocol

from monitor.config import Config, EventConfig
from monitor.errors import NotConfiguredError
from monitor.posts import Post


@dataclass
class Page:
    """One page of a search: its posts and what to remember once they are stored."""

    posts: list[Post]
    cursor: dict[str, str | None] = field(default_factory=dict)  # kind → value to store (None deletes it)
    read: int = 0  # posts billed or read from the API for this page (may exceed len(posts))
    cost_usd: float = 0.0  # estimated price of this page
    skipped: int = 0  # malformed items logged and left out
    feed: str | None = None  # the feed it was read from ("mastodon@host #tag"), recorded for coverage; None: the source


@dataclass
class CountsPage:
    """Post counts per time bucket from a counts endpoint, and the cursor to store with them."""

    buckets: list[tuple[datetime, int]]  # (bucket start, posts), every bucket of the covered range
    cursor: dict[str, str | None] = field(default_factory=dict)
    requests: int = 1  # API requests this page took
    cost_usd: float = 0.0


def environment(name: str) -> str | None:
    """A secret from the environment variable a setting names; None when unset or empty."""
    return os.environ.get(name) or None


class SessionStore(Protocol):
    """Where a source keeps a login session between runs (the Store); the value is a secret."""

    def get_session(self, source: str, account: str) -> str | None: ...

    def set_session(self, source: str, account: str, value: str | None) -> None: ...


class Source(ABC):
    """A platform we collect posts from."""

    name: ClassVar[str]
    read_limit: int | None = None  # stop after reading this many posts; the pipeline sets it from the budgets
    stop: threading.Event | None = None  # set on shutdown; the source's waits end early when it is (see open)
    sessions: SessionStore | None = None  # sources that log in keep their session there (see open)

    @classmethod
    @abstractmethod
    def from_config(cls, config: Config) -> Source:
        """Build from the config; raise NotConfiguredError (saying why) when credentials or settings are missing."""

    @classmethod
    def open(
        cls, config: Config, *, stop: threading.Event | None = None, sessions: SessionStore | None = None
    ) -> Source:
        """Build from the config (from_config) for one run: its shutdown flag and where sessions are kept."""
        source = cls.from_config(config)
        source.stop, source.sessions = stop, sessions
        return source

    @abstractmethod
    def search(self, event: EventConfig, cursor: Mapping[str, str]) -> Iterator[Page]:
        """Yield pages of posts matching the event's query that are newer than the stored cursor."""

    def stopping(self) -> bool:
        """Whether a shutdown was asked for: the source ends its run after the current page."""
        return self.stop is not None and self.stop.is_set()

    def close(self) -> None:  # noqa: B027 - optional hook; most sources hold nothing to release
        """Release connections."""

    def counts(self, event: EventConfig, cursor: Mapping[str, str]) -> Iterator[CountsPage]:
        """Yield post counts per hour matching the event's query, for sources with a counts endpoint."""
        raise NotConfiguredError(f"the {self.name} source has no counts endpoint")
