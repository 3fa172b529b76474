"""Mastodon statuses → Post records, HTML content → plain text; pure functions, no network, no Mastodon.py.

Statuses arrive as Mastodon.py's dict subclasses (times already parsed) or as plain JSON dicts; both work.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

from monitor.errors import MalformedError
from monitor.posts import InvalidPostError, Post, parse_timestamp
from monitor.sources.payload_fields import count as _count
from monitor.sources.payload_fields import mapping as _mapping
from monitor.sources.payload_fields import optional_text as _optional_text

BLOCK_TAGS = {"p", "div", "blockquote", "li", "ul", "ol", "pre", "h1", "h2", "h3", "h4", "h5", "h6"}


class MalformedStatusError(MalformedError):
    """A status lacks what a Post needs (id, content, created_at) or has the wrong types."""


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment: <br> as a line break, paragraphs apart by a blank line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in BLOCK_TAGS and self.parts:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """Mastodon's status HTML → plain text: no tags, entities decoded, links as their full text."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    lines = "".join(extractor.parts).replace("\r", "").split("\n")
    text = "\n".join(line.strip() for line in lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()


def instance_source(instance: str) -> str:
    """The source name of posts read on an instance: ids of two instances never collide."""
    return f"mastodon@{instance}"


def normalize_status(status: Any, instance: str, collected_at: datetime) -> Post:
    """One status from an instance's API → Post; a boost is stored as a repost with the original's text."""
    if not isinstance(status, Mapping):
        raise MalformedStatusError(f"status is a {type(status).__name__}, not an object")
    status_id = _required_id(status)
    original = status.get("reblog")
    shown = original if isinstance(original, Mapping) else status
    account = _mapping(status, "account")
    return Post(
        source=instance_source(instance),
        id=status_id,
        created_at=_created_at(status),
        text=_text(shown),
        author=_optional_text(account, "acct"),
        lang=_optional_text(shown, "language"),
        likes=_count(shown, "favourites_count"),
        reposts=_count(shown, "reblogs_count"),
        replies=_count(shown, "replies_count"),
        followers=_count(account, "followers_count"),
        url=_optional_text(status, "url") or _optional_text(shown, "url") or _optional_text(status, "uri"),
        is_repost=shown is not status,
        repost_of=_optional_text(shown, "uri") if shown is not status else None,
        is_bot=account.get("bot") is True,
        raw=json.dumps(status, ensure_ascii=False, separators=(",", ":"), default=str),
        collected_at=collected_at,
    )


def normalize_statuses(statuses: Any, instance: str, collected_at: datetime) -> Iterator[Post | str]:
    """A list of statuses → a Post or a reason string per status."""
    if not isinstance(statuses, list):
        yield "the answer is not a list of statuses"
        return
    for status in statuses:
        try:
            yield normalize_status(status, instance, collected_at)
        except (MalformedStatusError, InvalidPostError) as error:
            status_id = status.get("id") if isinstance(status, Mapping) else None
            yield f"status {status_id!r}: {error}" if status_id is not None else str(error)


def status_id_number(status: Any) -> int | None:
    """A status id as a number (Mastodon ids are numeric strings that sort by time), None if it is not one."""
    value = status.get("id") if isinstance(status, Mapping) else None
    try:
        return int(str(value))
    except ValueError:
        return None


def _required_id(status: Mapping[str, Any]) -> str:
    value = status.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise MalformedStatusError("`id` is missing")
    return str(value)


def _text(status: Mapping[str, Any]) -> str:
    content = status.get("content")
    if not isinstance(content, str):
        raise MalformedStatusError("`content` is missing or not a string")
    text = html_to_text(content)
    warning = status.get("spoiler_text")
    return f"{warning}\n\n{text}" if isinstance(warning, str) and warning else text


def _created_at(status: Mapping[str, Any]) -> datetime:
    value = status.get("created_at")
    if isinstance(value, datetime):
        return parse_timestamp(value.isoformat())
    if not isinstance(value, str) or not value:
        raise MalformedStatusError("`created_at` is missing")
    try:
        return parse_timestamp(value)
    except ValueError as error:
        raise MalformedStatusError(f"`created_at`: {error}") from None
