"""The loaded config and the open store every verb works on, the scorer they imply, and the guard that keeps outputs off the database and the config file."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.config import Config, load_config
from monitor.errors import UsageError
from monitor.store import Store, open_store

if TYPE_CHECKING:
    from monitor.scoring import ScorerSpec


ProgressCallback = Callable[[int], None]  # called with the number of items just finished


@dataclass
class Workspace:
    """The loaded config and the open store: what every verb works on."""

    config: Config
    store: Store
    config_file: Path | None = None  # the file the config was read from, when it was

    def close(self) -> None:
        self.store.close()


def open_workspace(config_path: str | Path | None = None, config: Config | None = None) -> Workspace:
    """Load the config (unless given), register its secrets for redaction, and open its database."""
    from monitor.config import config_path as find_config
    from monitor.sources.redaction import redact_environment

    config_file = None if config is not None else find_config(config_path).resolve()
    config = config or load_config(config_path)
    redact_environment(config.secret_variables(), os.environ)
    return Workspace(config=config, store=open_store(config.database_url()), config_file=config_file)


def refuse_overwriting(ws: Workspace, path: Path, option: str) -> None:
    """A usage error when an output path is the database (or its -wal/-shm) or the config file."""
    protected = [(file, "the database") for file in ws.store.database_files()]
    if ws.config_file is not None:
        protected.append((ws.config_file, "the config file"))
    for file, what in protected:
        if _same_file(path, file):
            raise UsageError(f"{option} {path}: that is {what} ({file}); write to another file")


def _same_file(path: Path, other: Path) -> bool:
    if path.resolve() == other.resolve():
        return True
    try:
        return os.path.samefile(path, other)  # a hard link, or another name through a symlinked folder
    except OSError:
        return False  # one of them does not exist


def current_scorer(ws: Workspace) -> str:
    """The scorer version key of the current config."""
    return str(scorer_spec(ws).key())


def scorer_spec(ws: Workspace) -> ScorerSpec:
    """The ScorerSpec the workspace's config describes."""
    from monitor.scoring import spec_from_config

    return spec_from_config(ws.config)
