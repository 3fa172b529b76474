"""Bluesky payloads (searchPosts post views, Jetstream commit events) → Post records; pure functions, no network.

A quote post is a post that embeds another post's record; it keeps its own text and is not a repost.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from monitor.errors import MalformedError
from monitor.posts import InvalidPostError, Post, parse_timestamp
from monitor.sources.payload_fields import count as _count
from monitor.sources.payload_fields import mapping as _mapping
from monitor.sources.payload_fields import optional_text as _optional_text
from monitor.sources.payload_fields import required_text

log = logging.getLogger(__name__)

POST_COLLECTION = "app.bsky.feed.post"
QUOTE_EMBEDS = {
    "app.bsky.embed.record",
    "app.bsky.embed.record#view",
    "app.bsky.embed.recordWithMedia",
    "app.bsky.embed.recordWithMedia#view",
}
BOT_LABELS = {"bot"}  # self-labels some automated accounts carry


class MalformedPostError(MalformedError):
    """A post view or event lacks what a Post needs (uri, text, createdAt) or has the wrong types."""


_required_text = partial(required_text, error=MalformedPostError)


def normalize_post_view(view: Any, collected_at: datetime, source: str = "bluesky") -> Post:
    """One app.bsky.feed.defs#postView (as searchPosts returns it) → Post; MalformedPostError if unusable."""
    if not isinstance(view, Mapping):
        raise MalformedPostError(f"post is a {type(view).__name__}, not an object")
    uri = _required_text(view, "uri")
    record = _mapping(view, "record")
    author = _mapping(view, "author")
    handle = _optional_text(author, "handle") or _optional_text(author, "did")
    return Post(
        source=source,
        id=uri,
        created_at=_created_at(record),
        text=_text(record),
        author=handle,
        lang=_lang(record),
        likes=_count(view, "likeCount"),
        reposts=_count(view, "repostCount"),
        replies=_count(view, "replyCount"),
        url=web_link(handle, uri),
        is_bot=_labelled_bot(author),
        is_quote=is_quote(view),
        raw=_json(view),
        collected_at=collected_at,
    )


def normalize_search_page(
    body: Mapping[str, Any], collected_at: datetime, source: str = "bluesky"
) -> Iterator[Post | str]:
    """A searchPosts response body → a Post or a reason string per post view."""
    posts = body.get("posts")
    if not isinstance(posts, list):
        yield "the page's `posts` is not a list"
        return
    for view in posts:
        try:
            yield normalize_post_view(view, collected_at, source)
        except (MalformedPostError, InvalidPostError) as error:
            uri = view.get("uri") if isinstance(view, Mapping) else None
            yield f"post {uri!r}: {error}" if uri is not None else str(error)


def normalize_jetstream_event(event: Any, collected_at: datetime, source: str = "bluesky") -> Post | None:
    """A Jetstream event → Post when it creates a post; None for anything else (deletes, likes, identity…).

    Jetstream carries the author's DID, not the handle, and no engagement counts (they are None).
    """
    if not isinstance(event, Mapping) or event.get("kind") != "commit":
        return None
    commit = _mapping(event, "commit")
    if commit.get("operation") != "create" or commit.get("collection") != POST_COLLECTION:
        return None
    did = _required_text(event, "did")
    rkey = _required_text(commit, "rkey")
    record = _mapping(commit, "record")
    uri = f"at://{did}/{POST_COLLECTION}/{rkey}"
    return Post(
        source=source,
        id=uri,
        created_at=_created_at(record),
        text=_text(record),
        author=did,
        lang=_lang(record),
        url=web_link(did, uri),
        is_quote=is_quote(event),
        raw=_json(event),
        collected_at=collected_at,
    )


def web_link(actor: str | None, uri: str) -> str | None:
    """at://did/app.bsky.feed.post/rkey → https://bsky.app/profile/<handle or did>/post/<rkey>."""
    parts = uri.removeprefix("at://").split("/")
    if len(parts) != 3 or parts[1] != POST_COLLECTION:
        return None
    return f"https://bsky.app/profile/{actor or parts[0]}/post/{parts[2]}"


def is_quote(raw: str | Mapping[str, Any] | None) -> bool:
    """Whether a post (a post view or a Jetstream event, or its raw JSON) quotes another post."""
    payload = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(payload, Mapping):
        return False
    record = _mapping(payload, "record") or _mapping(_mapping(payload, "commit"), "record")
    embeds = (_mapping(payload, "embed"), _mapping(record, "embed"))
    return any(embed.get("$type") in QUOTE_EMBEDS for embed in embeds)


def _text(record: Mapping[str, Any]) -> str:
    text = record.get("text")
    if not isinstance(text, str):
        raise MalformedPostError("`record.text` is missing or not a string")
    return text


def _created_at(record: Mapping[str, Any]) -> datetime:
    stamp = record.get("createdAt")
    if not isinstance(stamp, str) or not stamp:
        raise MalformedPostError("`record.createdAt` is missing or not a string")
    try:
        return parse_timestamp(stamp)
    except ValueError as error:
        raise MalformedPostError(f"`record.createdAt`: {error}") from None


def _lang(record: Mapping[str, Any]) -> str | None:
    langs = record.get("langs")
    if isinstance(langs, list) and langs and isinstance(langs[0], str) and langs[0]:
        return langs[0][:16]
    return None


def _labelled_bot(author: Mapping[str, Any]) -> bool:
    labels = author.get("labels")
    if not isinstance(labels, list):
        return False
    return any(isinstance(label, Mapping) and label.get("val") in BOT_LABELS for label in labels)


def _json(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)
