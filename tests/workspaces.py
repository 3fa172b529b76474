"""Test helpers for opening a workspace on a config and reading back what an event stored."""

from __future__ import annotations

from typing import Any

from monitor.config import Config
from monitor.pipeline import Workspace
from monitor.store import CursorUpdate, Store, open_store


def workspace_on(config: Config, store_class: type[Store] = Store) -> Workspace:
    """A workspace on the config's database, with the store class a test needs (e.g. one that dies mid-run)."""
    return Workspace(config, store_class(open_store(config.database_url()).engine))


def event_rows(store: Store, event: str) -> list[dict[str, Any]]:
    """Every stored post of an event, oldest first, as dicts."""
    return [row for chunk in store.iter_event_posts(event) for row in chunk]


def stored_cursor(store: Store, event: str, source: str, kind: str) -> str | None:
    """The value of one stored cursor, or None."""
    found = [row["value"] for row in store.cursors() if (row["event"], row["source"], row["kind"]) == (event, source, kind)]
    return found[0] if found else None


def store_cursor(store: Store, update: CursorUpdate) -> None:
    """Write (or, with value None, delete) one cursor the way a page does: add_posts with no posts."""
    store.add_posts(update.event, [], cursors=[update])


def record_feed_read(store: Store, event: str, source: str, feed: str, statuses: int) -> None:
    """Record a feed read with no post kept, the way a Mastodon page that matched nothing does."""
    store.add_posts(event, [], feed_read=(source, feed, statuses))
