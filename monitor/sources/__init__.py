"""Registry: config name → Source class, imported lazily so `backlash --help` stays instant."""

from __future__ import annotations

from importlib import import_module

from monitor.sources.base import Page, Source

__all__ = ["Page", "Source", "SOURCE_CLASSES", "source_class"]

SOURCE_CLASSES: dict[str, str] = {
    "x": "monitor.sources.x:XSource",
    "bluesky": "monitor.sources.bluesky:BlueskySource",
    "mastodon": "monitor.sources.mastodon:MastodonSource",
    "reddit": "monitor.sources.reddit:RedditSource",
    "simulated": "monitor.sources.simulated:SimulatedSource",
}


def source_class(name: str) -> type[Source]:
    """The Source class registered under a config name."""
    module_name, _, class_name = SOURCE_CLASSES[name].partition(":")
    cls: type[Source] = getattr(import_module(module_name), class_name)
    return cls
