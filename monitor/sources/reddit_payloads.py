"""Reddit things (JSON) → Post records, comment trees → comments and "more" stubs; pure, no network, no PRAW.

A thing is `{"kind": "t1" | "t3" | "more", "data": {...}}` as Reddit's API sends it (t1 a comment, t3 a
submission). Posts are stored under source "reddit" with the thing's fullname as id, so a submission
met in a thread, a subreddit and the search is stored once.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from monitor.errors import MalformedError
from monitor.posts import PLACEHOLDER_TEXTS, Post
from monitor.sources.payload_fields import count as _count
from monitor.sources.payload_fields import mapping as _mapping
from monitor.sources.payload_fields import optional_text as _optional_text

SOURCE = "reddit"
WEB_BASE = "https://www.reddit.com"  # links stored with posts point at the site, whatever API host was used
BOT_AUTHORS = {"AutoModerator"}  # Reddit flags no account as a bot; its own moderation bot posts in every big thread
DELETED_AUTHOR = "[deleted]"
_THREAD_URL = re.compile(r"(?:/comments/|redd\.it/)([a-z0-9]+)", re.IGNORECASE)
_BARE_ID = re.compile(r"^(?:t3_)?([a-z0-9]+)$", re.IGNORECASE)


class MalformedThingError(MalformedError):
    """A thing lacks what a Post needs (name, created_utc, a body or title) or has the wrong types."""


@dataclass(frozen=True)
class MoreStub:
    """A "load more comments" stub in a comment tree: the ids it hides, or a "continue this thread" link."""

    parent_id: str  # fullname of the comment or submission the hidden comments reply to
    children: tuple[str, ...]  # base36 ids of the hidden comments; empty for "continue this thread"
    depth: int  # depth of the hidden comments


def thread_id(reference: str) -> str:
    """A thread given as URL (reddit.com/r/…/comments/ID/…, redd.it/ID), fullname (t3_ID) or ID → its base36 id."""
    text = reference.strip()
    found = _THREAD_URL.search(text) or _BARE_ID.match(text)
    if found is None:
        raise ValueError(f"{reference!r} is not a Reddit thread URL or id")
    return found.group(1).lower()


def id_number(fullname_or_id: str) -> int | None:
    """A thing's id (base36, with or without its `t1_` prefix) as a number: ids grow with time."""
    bare = fullname_or_id.rsplit("_", 1)[-1]
    try:
        return int(bare, 36)
    except ValueError:
        return None


def unescape(text: str) -> str:
    """Reddit's Markdown with entities (`&amp;`, `&gt;`, `&#x200B;`) decoded once, as people read it."""
    return html.unescape(text).replace("\u200b", "").strip()


def normalize_thing(thing: Any, collected_at: datetime) -> Post:
    """One comment (t1) or submission (t3) → Post; a deleted or removed body keeps Reddit's placeholder."""
    if not isinstance(thing, Mapping) or not isinstance(thing.get("data"), Mapping):
        raise MalformedThingError("not a thing with `data`")
    kind, data = thing.get("kind"), thing["data"]
    if kind not in ("t1", "t3"):
        raise MalformedThingError(f"kind {kind!r} is neither a comment nor a submission")
    author = _optional_text(data, "author")
    return Post(
        source=SOURCE,
        id=_fullname(data, str(kind)),
        created_at=_created_at(data),
        text=_comment_text(data) if kind == "t1" else _submission_text(data),
        author=None if author == DELETED_AUTHOR else author,
        likes=_score(data),
        reposts=_count(data, "num_crossposts") if kind == "t3" else None,
        replies=_count(data, "num_comments") if kind == "t3" else None,
        url=_link(data),
        is_bot=author in BOT_AUTHORS,
        raw=_raw(str(kind), data),
        collected_at=collected_at,
    )


def normalize_things(things: Any, collected_at: datetime) -> Iterator[Post | str]:
    """A list of things → a Post or a reason string per comment or submission ("more" stubs are left out)."""
    if not isinstance(things, list):
        yield "the answer is not a list of things"
        return
    for thing in things:
        if isinstance(thing, Mapping) and thing.get("kind") == "more":
            continue
        try:
            yield normalize_thing(thing, collected_at)
        except MalformedThingError as error:
            name = _mapping(thing, "data").get("name") if isinstance(thing, Mapping) else None
            yield f"thing {name!r}: {error}" if name is not None else str(error)


def listing_page(payload: Any) -> tuple[list[Any], str | None]:
    """A Listing → (its children, the `after` fullname of the next page or None at the end)."""
    data = _mapping(payload, "data") if isinstance(payload, Mapping) else {}
    children = data.get("children")
    return (children if isinstance(children, list) else []), _optional_text(data, "after")


def flatten_tree(things: Any) -> tuple[list[Any], list[MoreStub]]:
    """A comment tree (a thread's second Listing, or morechildren's flat `things`) → comments and stubs.

    Comments come in tree order with their `depth` and `parent_id`; nested `replies` are walked, not kept.
    """
    comments: list[Any] = []
    stubs: list[MoreStub] = []
    pending = list(reversed(things if isinstance(things, list) else []))
    while pending:
        thing = pending.pop()
        if not isinstance(thing, Mapping):
            comments.append(thing)  # normalize_things reports it
            continue
        data = _mapping(thing, "data")
        if thing.get("kind") == "more":
            stubs.append(_stub(data))
            continue
        comments.append(thing)
        replies, _ = listing_page(data.get("replies"))
        pending.extend(reversed(replies))
    return comments, stubs


def morechildren_things(payload: Any) -> list[Any]:
    """The flat list of things in an /api/morechildren answer."""
    data = _mapping(_mapping(payload, "json"), "data") if isinstance(payload, Mapping) else {}
    found = data.get("things")
    return found if isinstance(found, list) else []


def _stub(data: Mapping[str, Any]) -> MoreStub:
    children = data.get("children")
    ids = tuple(str(child) for child in children if isinstance(child, str)) if isinstance(children, list) else ()
    depth = data.get("depth")
    return MoreStub(
        parent_id=_optional_text(data, "parent_id") or "",
        children=ids,
        depth=depth if isinstance(depth, int) else 0,
    )


def _fullname(data: Mapping[str, Any], kind: str) -> str:
    name = _optional_text(data, "name")
    if name is not None:
        return name
    bare = data.get("id")
    if isinstance(bare, str) and bare:
        return f"{kind}_{bare}"
    raise MalformedThingError("`name` and `id` are missing")


def _comment_text(data: Mapping[str, Any]) -> str:
    body = data.get("body")
    if not isinstance(body, str):
        raise MalformedThingError("`body` is missing or not a string")
    return unescape(body)


def _submission_text(data: Mapping[str, Any]) -> str:
    """Title, then the self text; a removed self text leaves the title, which Reddit still shows."""
    title = data.get("title")
    if not isinstance(title, str):
        raise MalformedThingError("`title` is missing or not a string")
    body = unescape(data.get("selftext") or "") if isinstance(data.get("selftext"), str) else ""
    parts = [unescape(title)] + ([body] if body and body not in PLACEHOLDER_TEXTS else [])
    return "\n\n".join(part for part in parts if part)


def _score(data: Mapping[str, Any]) -> int | None:
    """Reddit's score (upvotes minus downvotes) as engagement; a negative score counts as none."""
    value = data.get("score")
    if isinstance(value, int) and not isinstance(value, bool):
        return max(value, 0)
    return None


def _created_at(data: Mapping[str, Any]) -> datetime:
    value = data.get("created_utc")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedThingError("`created_utc` is missing or not a number")
    return datetime.fromtimestamp(float(value), UTC)


def _link(data: Mapping[str, Any]) -> str | None:
    permalink = _optional_text(data, "permalink")
    return WEB_BASE + permalink if permalink and permalink.startswith("/") else permalink


def _raw(kind: str, data: Mapping[str, Any]) -> str:
    """The thing as received, without its nested replies (each reply is stored as its own post)."""
    kept = {key: value for key, value in data.items() if key != "replies"}
    return json.dumps({"kind": kind, "data": kept}, ensure_ascii=False, separators=(",", ":"), default=str)
