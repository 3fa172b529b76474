"""Test helpers for opening a workspace on a config and reading back what an event stored."""

from __future__ import annotations

from typing import Any

from monitor.config import Config
from monitor.pipeline import Workspace
from monitor.store import Store, open_store


def workspace_on(config: Config, store_class: type[Store] = Store) -> Workspace:
    """A workspace on the config's database, with the store class a test needs (e.g. one that dies mid-run)."""
    return Workspace(config, store_class(open_store(config.database_url()).engine))


def event_rows(store: Store, event: str) -> list[dict[str, Any]]:
    """Every stored post of an event, oldest first, as dicts."""
    return [row for chunk in store.iter_event_posts(event) for row in chunk]
