"""Typed reads of fields from platform JSON payloads, shared by every source's normalisers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.posts import valid_count


def required_text(obj: Mapping[str, Any], key: str, error: type[Exception]) -> str:
    """A non-empty string field, or `error` naming the field."""
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise error(f"`{key}` is missing or not a string")
    return value


def optional_text(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and value else None


def mapping(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A nested object, or an empty one when absent or of another type."""
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def count(obj: Mapping[str, Any], key: str) -> int | None:
    """An integer count (likes, reposts, followers…) the store can hold, None when absent, malformed or absurd."""
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and valid_count(value) else None
