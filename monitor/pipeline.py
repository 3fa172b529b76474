"""The verbs (collect, import, score, report, digest, status, export) that the CLI and the daemon call.

Each verb composes the modules below it and returns a result object; it never prints.
Long work reports progress through an optional callback so the CLI can draw a bar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from monitor.config import Config, load_config
from monitor.store import Store, open_store

ProgressCallback = Callable[[int], None]  # called with the number of items just finished


@dataclass
class Workspace:
    """The loaded config and the open store: what every verb works on."""

    config: Config
    store: Store

    def close(self) -> None:
        self.store.close()


def open_workspace(config_path: str | Path | None = None, config: Config | None = None) -> Workspace:
    """Load the config (unless given) and open its database."""
    config = config or load_config(config_path)
    return Workspace(config=config, store=open_store(config.database_url()))
